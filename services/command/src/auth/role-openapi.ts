// The admin role operations for the command API's OpenAPI document.
import { USER_ROLES } from '@connect/domain';
import type { Operation } from '@connect/http';
import { z } from 'zod';

const granted = z.object({
  userId: z.uuid(),
  role: z.enum(USER_ROLES),
  granted: z.boolean().meta({ description: 'false: the user held the role already (200)' }),
  event: z
    .object({ index: z.number().int(), id: z.uuid(), type: z.string(), leafHash: z.string() })
    .optional()
    .meta({ description: 'the RoleGranted entry in the ledger stream roles-<userId>' }),
});

const adminErrors = {
  '400': 'Not a user id (path.id) or not a role (path.role)',
  '401': 'No or bad access token',
  '403': 'Not an admin',
};

export const roleOperations: Operation[] = [
  {
    method: 'post',
    path: '/v1/admin/users/{id}/roles/{role}',
    summary:
      'Grant a role (admin, auditor) to a user (admins): recorded as RoleGranted in the ledger, in force on the user’s open sessions at once',
    auth: true,
    response: granted,
    examples: {
      response: {
        userId: '5d1c2b7e-8a34-4f0e-b6a9-1e2f3a4b5c6d',
        role: 'auditor',
        granted: true,
        event: {
          index: 73,
          id: '1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b',
          type: 'RoleGranted',
          leafHash: 'c2VjcmV0LWZyZWUgZXhhbXBsZSBsZWFmIGhhc2g9PT0=',
        },
      },
    },
    responses: { '201': 'Granted', '200': 'Held already', ...adminErrors, '404': 'No such user' },
  },
  {
    method: 'delete',
    path: '/v1/admin/users/{id}/roles/{role}',
    summary:
      'Revoke a role from a user (admins): recorded as RoleRevoked in the ledger, in force at once; the last admin keeps the admin role',
    auth: true,
    responses: {
      '204': 'Revoked',
      ...adminErrors,
      '404': 'No such user, or the user does not hold the role',
      '409': 'The last admin’s admin role',
    },
  },
];
