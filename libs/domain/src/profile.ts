// How a profile changes after signup: ProfileUpdated, in the user's profile stream after its
// ProfileRegistered. Each event holds the profile as it stands after it, so the latest of the two
// is the profile now.
import { z } from 'zod';
import { PROFILE_REGISTERED, profileRegistered } from './streams.ts';

/** An https URL of at most 2048 characters. */
export const avatarUrl = z
  .url({ protocol: /^https$/, error: 'must be an https URL' })
  .max(2048, 'must be at most 2048 characters');

/** Written when a user changes their display name or picture (PATCH /v1/me). */
export const PROFILE_UPDATED = 'ProfileUpdated';
export const profileUpdated = z.object({
  userId: z.string(),
  displayName: profileRegistered.shape.displayName,
  /** Null: no picture. */
  avatarUrl: avatarUrl.nullable(),
});
export type ProfileUpdated = z.infer<typeof profileUpdated>;

/** The profile an entry of a profile stream states (name, and picture if any); undefined for any other entry or a redacted one. */
export function profileStated(entry: {
  type?: unknown;
  data?: unknown;
}): { userId: string; displayName: string; avatarUrl: string | null } | undefined {
  if (entry.type === PROFILE_REGISTERED) {
    const parsed = profileRegistered.safeParse(entry.data);
    return parsed.success ? { ...parsed.data, avatarUrl: null } : undefined;
  }
  if (entry.type === PROFILE_UPDATED) {
    const parsed = profileUpdated.safeParse(entry.data);
    return parsed.success ? parsed.data : undefined;
  }
  return undefined;
}
