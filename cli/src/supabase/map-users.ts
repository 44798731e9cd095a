// Supabase users → accounts: the id, email, verified state and bcrypt hash carry over; social
// identities become oidc_identities of the configured providers. Pure: no I/O.
import type { SourceIdentity, SourceProfile, SourceUser } from './source.ts';

export interface AccountPlan {
  id: string;
  email: string;
  displayName: string;
  /** The source's bcrypt hash, verified and replaced at the first sign-in; null: social only. */
  passwordHash: string | null;
  emailVerifiedAt: Date | null;
  bannedUntil: Date | null;
  identities: { provider: string; subject: string; email: string | null; emailVerified: boolean }[];
}

export type UserDecision =
  | { outcome: 'import'; account: AccountPlan; reasons: string[] }
  | { outcome: 'skipped' | 'failed'; sourceId: string; reasons: string[] };

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

function displayNameOf(user: SourceUser, profile: SourceProfile | undefined, email: string): string {
  const meta = user.raw_user_meta_data ?? {};
  const candidates = [profile?.display_name, meta.full_name, meta.name, email.split('@')[0]];
  for (const candidate of candidates) {
    if (typeof candidate === 'string' && candidate.trim() !== '') return candidate.trim().slice(0, 100);
  }
  return 'User';
}

/**
 * What becomes of each source user, in the source's order: the first user with an email keeps it
 * (a later one with the same address, in any case, is failed), soft-deleted and anonymous users
 * are skipped, identities at providers not configured here are reported and left out.
 */
export function mapUsers(
  users: SourceUser[],
  identities: SourceIdentity[],
  profiles: SourceProfile[],
  providers: string[],
): UserDecision[] {
  const profileOf = new Map(profiles.map((p) => [p.id, p]));
  const seen = new Map<string, string>();
  return users.map((user): UserDecision => {
    if (user.deleted_at) return { outcome: 'skipped', sourceId: user.id, reasons: ['soft-deleted'] };
    if (user.is_anonymous) return { outcome: 'skipped', sourceId: user.id, reasons: ['anonymous'] };
    const email = user.email?.trim().toLowerCase() ?? '';
    if (!/^[^@\s]+@[^@\s]+$/.test(email))
      return { outcome: 'failed', sourceId: user.id, reasons: ['no valid email'] };
    const holder = seen.get(email);
    if (holder)
      return { outcome: 'failed', sourceId: user.id, reasons: [`duplicate email: user ${holder} has it`] };
    seen.set(email, user.id);
    const reasons: string[] = [];
    let passwordHash: string | null = null;
    if (user.encrypted_password) {
      if (BCRYPT.test(user.encrypted_password)) passwordHash = user.encrypted_password;
      else reasons.push('password hash is not bcrypt: the user must reset their password');
    }
    const own = identities.filter((i) => i.user_id === user.id && i.provider !== 'email');
    const linked = own.flatMap((identity) => {
      const provider = identity.provider.toLowerCase();
      if (!providers.includes(provider)) {
        reasons.push(
          `identity at ${identity.provider} not linked: no CONNECT_OIDC_${provider.toUpperCase()} configured`,
        );
        return [];
      }
      const data = identity.identity_data;
      return [
        {
          provider,
          subject: typeof data.sub === 'string' ? data.sub : identity.provider_id,
          email: typeof data.email === 'string' ? data.email.toLowerCase() : null,
          emailVerified: data.email_verified === true,
        },
      ];
    });
    return {
      outcome: 'import',
      reasons,
      account: {
        id: user.id,
        email,
        displayName: displayNameOf(user, profileOf.get(user.id), email),
        passwordHash,
        emailVerifiedAt: user.email_confirmed_at,
        bannedUntil: user.banned_until,
        identities: linked,
      },
    };
  });
}
