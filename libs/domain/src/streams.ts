// Stream names and the events outside a commitment's own stream.
import { z } from 'zod';

export const commitmentStream = (commitmentId: string) => `commitment-${commitmentId}`;

const COMMITMENT_STREAM = /^commitment-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The commitment a stream belongs to; undefined for any other stream (types, profiles…). */
export const commitmentIdOf = (stream: string): string | undefined => COMMITMENT_STREAM.exec(stream)?.[1];
export const profileStream = (userId: string) => `profile-${userId}`;

/** Written when a user signs up, so the parties of a commitment are verifiable too. */
export const profileRegistered = z.object({
  userId: z.string(),
  displayName: z.string().trim().min(1).max(100),
});
export type ProfileRegistered = z.infer<typeof profileRegistered>;
