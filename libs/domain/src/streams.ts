// Stream names and the events outside a commitment's own stream.
import { z } from 'zod';

export const commitmentStream = (commitmentId: string) => `commitment-${commitmentId}`;
/** Every commitment's stream, as a LIKE pattern (it matches the types stream too: see commitmentIdOf). */
export const COMMITMENT_STREAMS = commitmentStream('%');

const COMMITMENT_STREAM = /^commitment-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The commitment a stream belongs to; undefined for any other stream (types, profiles…). */
export const commitmentIdOf = (stream: string): string | undefined => COMMITMENT_STREAM.exec(stream)?.[1];

const PROFILE_PREFIX = 'profile-';
export const profileStream = (userId: string) => `${PROFILE_PREFIX}${userId}`;
/** Every profile stream, as a LIKE pattern. */
export const PROFILE_STREAMS = profileStream('%');
/** The user a profile stream belongs to; undefined for any other stream. */
export const profileUserOf = (stream: string): string | undefined =>
  stream.startsWith(PROFILE_PREFIX) ? stream.slice(PROFILE_PREFIX.length) : undefined;

/** Written when a user signs up, so the parties of a commitment are verifiable too. */
export const PROFILE_REGISTERED = 'ProfileRegistered';
export const profileRegistered = z.object({
  userId: z.string(),
  displayName: z.string().trim().min(1).max(100),
});
export type ProfileRegistered = z.infer<typeof profileRegistered>;

/** Where user erasures are recorded: not the user's profile stream, whose key an erasure destroys. */
export const ERASURES_STREAM = 'erasures';
/** Written when a user is erased (crypto-shredded): that it happened, never who they were. */
export const USER_ERASED = 'UserErased';
export const userErased = z.object({ userId: z.string() }).strict();
export type UserErased = z.infer<typeof userErased>;
/** How an erased user is shown to the people they shared commitments with. */
export const ERASED_USER_NAME = '(erased user)';
