// The caller's account as the mutable tables hold it, for GET /v1/me/export. connect_reader has no
// grant on these tables (they hold secrets), so they are read with the service's own connections,
// as the calendar feeds are, and every statement is bounded to the caller's own rows by its
// `where user_id = caller`. Only the columns a person may see about themselves are selected:
// never a password hash, token hash, code hash, feed nonce or push key.
import { type Database, type FieldCipher, openIdentityEmails, openPhones, openUserEmails } from '@connect/db';
import { type Kysely, sql } from 'kysely';

type Db = Kysely<Database>;

export interface AccountExport {
  account: {
    id: string;
    email: string;
    displayName: string;
    avatarUrl: string | null;
    emailVerified: boolean;
    emailVerifiedAt: string | null;
    createdAt: string;
    roles: string[];
  };
  identities: {
    provider: string;
    subject: string;
    email: string | null;
    emailVerified: boolean;
    createdAt: string;
    lastSignInAt: string;
  }[];
  phoneNumbers: { phone: string; confirmed: boolean; confirmedAt: string | null; createdAt: string }[];
  /** The choices the person made; every other channel × kind is at its default. */
  notificationPreferences: { channel: string; kind: string; enabled: boolean; updatedAt: string }[];
  /** Where each browser's subscription points (the push service's origin); its keys stay here. */
  pushSubscriptions: {
    id: string;
    endpointOrigin: string;
    createdAt: string;
    lastSuccessAt: string | null;
  }[];
  /** The secret feed URL is not exported: only that one exists and since when. */
  calendarFeeds: { createdAt: string }[];
  sessions: {
    id: string;
    createdAt: string;
    lastActiveAt: string;
    expiresAt: string;
    revokedAt: string | null;
    userAgent: string | null;
    address: string | null;
    current: boolean;
  }[];
}

const iso = (date: Date) => date.toISOString();
const isoOrNull = (date: Date | null) => date?.toISOString() ?? null;

function originOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin;
  } catch {
    return '';
  }
}

/** The caller's account, identities, phone, preferences, push subscriptions, feed and sessions; undefined when the account is gone. */
export async function accountExport(
  db: Db,
  caller: { userId: string; sessionId: string },
  /** Opens the sealed fields (the phone number, the addresses). */
  cipher: FieldCipher,
): Promise<AccountExport | undefined> {
  const { userId } = caller;
  const [user, identities, phones, preferences, pushes, feeds, sessions] = await Promise.all([
    db
      .selectFrom('users')
      .select([
        'id',
        'email',
        'email_sealed',
        'display_name',
        'avatar_url',
        'email_verified_at',
        'created_at',
        sql<
          string[]
        >`array(select role from user_roles where user_roles.user_id = users.id order by role)`.as('roles'),
      ])
      .where('id', '=', userId)
      .executeTakeFirst(),
    db
      .selectFrom('oidc_identities')
      .select([
        'provider',
        'subject',
        'email',
        'email_sealed',
        'email_verified',
        'created_at',
        'last_sign_in_at',
      ])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute(),
    db
      .selectFrom('phone_numbers')
      .select(['user_id', 'phone', 'confirmed_at', 'created_at'])
      .where('user_id', '=', userId)
      .execute(),
    db
      .selectFrom('notification_preferences')
      .select(['channel', 'kind', 'enabled', 'updated_at'])
      .where('user_id', '=', userId)
      .orderBy('channel')
      .orderBy('kind')
      .execute(),
    db
      .selectFrom('push_subscriptions')
      .select(['id', 'endpoint', 'created_at', 'last_success_at'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .execute(),
    db.selectFrom('calendar_feeds').select(['created_at']).where('user_id', '=', userId).execute(),
    db
      .selectFrom('sessions')
      .select(['id', 'created_at', 'last_active_at', 'expires_at', 'revoked_at', 'user_agent', 'address'])
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .execute(),
  ]);
  if (!user) return undefined;
  const [email] = await openUserEmails(cipher, [user]);
  const identityEmails = await openIdentityEmails(cipher, userId, identities);
  const phoneTexts = await openPhones(cipher, phones);
  return {
    account: {
      id: user.id,
      email: email ?? '',
      displayName: user.display_name,
      avatarUrl: user.avatar_url,
      emailVerified: user.email_verified_at !== null,
      emailVerifiedAt: isoOrNull(user.email_verified_at),
      createdAt: iso(user.created_at),
      roles: user.roles,
    },
    identities: identities.map((row, i) => ({
      provider: row.provider,
      subject: row.subject,
      email: identityEmails[i] ?? null,
      emailVerified: row.email_verified,
      createdAt: iso(row.created_at),
      lastSignInAt: iso(row.last_sign_in_at),
    })),
    // A number whose key is erased is gone.
    phoneNumbers: phones.flatMap((row, i) => {
      const phone = phoneTexts[i];
      if (phone === undefined) return [];
      const confirmedAt = isoOrNull(row.confirmed_at);
      return [{ phone, confirmed: confirmedAt !== null, confirmedAt, createdAt: iso(row.created_at) }];
    }),
    notificationPreferences: preferences.map((row) => ({
      channel: row.channel,
      kind: row.kind,
      enabled: row.enabled,
      updatedAt: iso(row.updated_at),
    })),
    pushSubscriptions: pushes.map((row) => ({
      id: row.id,
      endpointOrigin: originOf(row.endpoint),
      createdAt: iso(row.created_at),
      lastSuccessAt: isoOrNull(row.last_success_at),
    })),
    calendarFeeds: feeds.map((row) => ({ createdAt: iso(row.created_at) })),
    sessions: sessions.map((row) => ({
      id: row.id,
      createdAt: iso(row.created_at),
      lastActiveAt: iso(row.last_active_at),
      expiresAt: iso(row.expires_at),
      revokedAt: isoOrNull(row.revoked_at),
      userAgent: row.user_agent,
      address: row.address,
      current: row.id === caller.sessionId,
    })),
  };
}
