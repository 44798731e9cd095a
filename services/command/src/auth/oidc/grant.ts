// POST /v1/auth/token with grant_type=authorization_code: the one-time code a social login sent
// the app back with (flow.ts), exchanged for the usual token response.
import { z } from 'zod';

export const appCodeGrant = z
  .object({
    grant_type: z.literal('authorization_code'),
    code: z.string().min(1).max(200),
    /** When given, it must be where the code was sent (origin and path). */
    redirect_uri: z.string().min(1).max(2000).optional(),
  })
  .strict();
