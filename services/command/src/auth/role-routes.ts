// Admins grant and revoke roles; each change is on the ledger and applies to the user's open
// sessions at once (see roles.ts and libs/auth session-gate.ts).
import type { Authenticate, SessionGate } from '@connect/auth';
import { userRoleSchema } from '@connect/domain';
import { HttpProblem, parseWith, problem } from '@connect/http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { grantRole, type RoleDeps, revokeRole } from './roles.ts';

export const roleParams = z.object({ id: z.uuid(), role: userRoleSchema }).strict();

export async function roleRoutes(
  app: FastifyInstance,
  deps: RoleDeps & { authenticate: Authenticate; sessions: SessionGate },
): Promise<void> {
  async function adminRequest(request: FastifyRequest) {
    const caller = await deps.authenticate(request);
    if (!caller.isAdmin) throw new HttpProblem(problem(403, 'Only an admin can grant or revoke roles.'));
    const params = parseWith(roleParams, request.params, 'path');
    return { caller, params };
  }
  const noUser = (id: string) => new HttpProblem(problem(404, `No user ${id}.`));

  app.post('/v1/admin/users/:id/roles/:role', async (request, reply) => {
    const { caller, params } = await adminRequest(request);
    const result = await grantRole(deps, {
      userId: params.id,
      role: params.role,
      by: caller.userId,
      correlationId: request.correlationId,
    });
    if (result.outcome === 'no-user') throw noUser(params.id);
    deps.sessions.forgetUser(params.id);
    const held = { userId: params.id, role: params.role };
    if (result.outcome === 'already-held') return reply.code(200).send({ ...held, granted: false });
    return reply.code(201).send({ ...held, granted: true, event: result.event });
  });

  app.delete('/v1/admin/users/:id/roles/:role', async (request, reply) => {
    const { caller, params } = await adminRequest(request);
    const result = await revokeRole(deps, {
      userId: params.id,
      role: params.role,
      by: caller.userId,
      correlationId: request.correlationId,
    });
    if (result.outcome === 'no-user') throw noUser(params.id);
    if (result.outcome === 'not-held')
      throw new HttpProblem(problem(404, `The user does not hold the ${params.role} role.`));
    if (result.outcome === 'last-admin') {
      throw new HttpProblem(
        problem(409, 'This is the last admin; grant the admin role to someone else first.'),
      );
    }
    deps.sessions.forgetUser(params.id);
    return reply.code(204).send();
  });
}
