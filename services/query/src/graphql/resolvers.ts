// GraphQL resolvers over the same reads as REST, each as the caller under row-level security.
// Parties and documents come with each commitment in one statement; `commitment(id)` and history
// are batched by loaders across a response, so neither aliases nor nesting cost a query per item.
import type { Database, FieldCipher } from '@connect/db';
import type { Terms } from '@connect/domain';
import { GraphQLScalarType, valueFromASTUntyped } from 'graphql';
import type { Kysely } from 'kysely';
import mercurius, { type IResolvers, type MercuriusContext, type MercuriusLoaders } from 'mercurius';
import type pg from 'pg';
import { z } from 'zod';
import { type CursorKey, encodeCursor, readCursor } from '../commitments/cursor.ts';
import { describeEvent, mentionedUsers } from '../commitments/describe.ts';
import {
  type CommitmentView,
  commitmentsById,
  commitmentTypes,
  displayNames,
  historyOf,
  listCommitments,
  type PendingAmendmentView,
  profileOf,
} from '../commitments/queries.ts';
import {
  encodeNotificationCursor,
  listNotifications,
  MAX_MARKED,
  markNotificationsRead,
  NOTIFICATION_ID,
  readNotificationCursor,
  unreadNotificationCount,
} from '../notifications/queries.ts';
import { type Caller, readAs } from '../reader.ts';

export type GraphqlContext = MercuriusContext;

declare module 'mercurius' {
  interface MercuriusContext {
    /** Who asks: set from the bearer token (HTTP) or from connection_init (subscriptions). */
    caller: Caller;
    sessionId?: string;
  }
}

const { ErrorWithProps } = mercurius;
export const MAX_PAGE = 100;

function badInput(field: string, message: string): Error {
  return new ErrorWithProps(`${field}: ${message}`, { code: 'BAD_USER_INPUT', field });
}

const instant = z.iso.datetime({ offset: true });
function parseCursor(cursor: string): CursorKey {
  const key = readCursor(cursor);
  if (!key) throw badInput('after', 'is not a cursor this API gave out');
  return key;
}

function parseInstant(field: string, value: string | undefined | null): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (!instant.safeParse(value).success) throw badInput(field, 'must be an ISO 8601 instant');
  return value;
}

interface ListArgs {
  first: number;
  after?: string | null;
  filter?: {
    status?: string[] | null;
    role?: string | null;
    type?: string | null;
    dueBefore?: string | null;
    dueAfter?: string | null;
  } | null;
}

interface NotificationListArgs {
  first: number;
  after?: string | null;
  unread?: boolean | null;
}

function pageSize(first: number): number {
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
    throw badInput('first', `must be between 1 and ${MAX_PAGE}`);
  }
  return first;
}

/** The ids to mark read, or null for all of them: exactly one of the two is given. */
function markedIds(args: { ids?: string[] | null; all?: boolean | null }): string[] | null {
  const hasIds = args.ids !== undefined && args.ids !== null;
  if (hasIds === (args.all === true)) throw badInput('ids', 'give either ids or all: true');
  if (!hasIds) return null;
  const ids = args.ids as string[];
  if (ids.length < 1 || ids.length > MAX_MARKED) throw badInput('ids', `give 1 to ${MAX_MARKED} ids`);
  if (!ids.every((id) => NOTIFICATION_ID.test(id))) throw badInput('ids', 'must be notification ids');
  return ids;
}

/** The terms in the order a commitment shows them. */
const TERM_FIELDS: readonly (keyof Terms)[] = ['title', 'description', 'terms', 'amount', 'dueAt'];

/** Any JSON value, passed through as it is (an event's data). */
const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => valueFromASTUntyped(ast, variables),
});

/**
 * `pool`: the service's own connections, for the one write (marking notifications read);
 * `fields`: opens the sealed fields read (the notifications' text).
 */
export function graphqlResolvers(
  reader: Kysely<Database>,
  pool: pg.Pool,
  fields: FieldCipher,
): {
  resolvers: IResolvers;
  loaders: MercuriusLoaders;
} {
  const resolvers: IResolvers = {
    JSON: JSONScalar,
    PendingAmendment: {
      changedFields: (amendment: PendingAmendmentView) =>
        TERM_FIELDS.filter((field) => field in amendment.changes),
    },
    Query: {
      me: async (_root, _args, { caller }: GraphqlContext) => {
        const profile = await readAs(reader, caller, (db) => profileOf(db, caller.userId));
        return {
          id: caller.userId,
          displayName: profile?.displayName ?? null,
          avatarUrl: profile?.avatarUrl ?? null,
          isAdmin: caller.roles?.includes('admin') ?? caller.isAdmin,
          roles: caller.roles ?? [],
        };
      },
      commitments: async (_root, args: ListArgs, { caller }: GraphqlContext) => {
        pageSize(args.first);
        const filter = args.filter ?? {};
        const list = {
          status: filter.status ?? undefined,
          role: filter.role ?? undefined,
          type: filter.type ?? undefined,
          dueBefore: parseInstant('filter.dueBefore', filter.dueBefore),
          dueAfter: parseInstant('filter.dueAfter', filter.dueAfter),
          after: args.after ? parseCursor(args.after) : undefined,
          limit: args.first,
        };
        return readAs(reader, caller, async (db) => {
          const page = await listCommitments(db, fields, caller.userId, list);
          const edges = page.items.map((node) => ({ cursor: encodeCursor(node), node }));
          return {
            edges,
            pageInfo: { hasNextPage: page.next !== null, endCursor: edges.at(-1)?.cursor ?? null },
          };
        });
      },
      commitmentTypes: (_root, _args, { caller }: GraphqlContext) => readAs(reader, caller, commitmentTypes),
      notifications: async (_root, args: NotificationListArgs, { caller }: GraphqlContext) => {
        const limit = pageSize(args.first);
        let after: ReturnType<typeof readNotificationCursor>;
        if (args.after) {
          after = readNotificationCursor(args.after);
          if (!after) throw badInput('after', 'is not a cursor this API gave out');
        }
        const unread = args.unread ?? undefined;
        return readAs(reader, caller, async (db) => {
          const page = await listNotifications(db, fields, caller.userId, { unread, limit, after });
          const edges = page.items.map((node) => ({ cursor: encodeNotificationCursor(node), node }));
          return {
            edges,
            pageInfo: { hasNextPage: page.next !== undefined, endCursor: edges.at(-1)?.cursor ?? null },
          };
        });
      },
      unreadNotificationCount: (_root, _args, { caller }: GraphqlContext) =>
        readAs(reader, caller, (db) => unreadNotificationCount(db, caller.userId)),
    },
    Mutation: {
      // Like REST's POST /v1/notifications/read: the caller's own rows only, by the statement itself.
      markNotificationsRead: (
        _root,
        args: { ids?: string[] | null; all?: boolean | null },
        { caller }: GraphqlContext,
      ) => markNotificationsRead(pool, caller.userId, markedIds(args)),
    },
  };

  const loaders: MercuriusLoaders = {
    Query: {
      // Every `commitment(id)` of a response (aliases, say) in one statement.
      async commitment(queries: { params: { id: string } }[], { caller }: GraphqlContext) {
        const isId = (id: string) => z.uuid().safeParse(id).success;
        const ids = [...new Set(queries.map((q) => q.params.id).filter(isId))];
        const found = await readAs(reader, caller, (db) => commitmentsById(db, fields, ids));
        const byId = new Map(found.map((commitment) => [commitment.id, commitment]));
        // An error in its place fails that field alone.
        return queries.map(({ params: { id } }) =>
          isId(id) ? (byId.get(id) ?? null) : badInput('id', 'must be a commitment id (UUID)'),
        );
      },
    },
    Commitment: {
      async history(queries: { obj: CommitmentView }[], { caller }: GraphqlContext) {
        const ids = [...new Set(queries.map((q) => q.obj.id))];
        const rows = await readAs(reader, caller, async (db) => {
          const history = await historyOf(db, fields, ids);
          const names = await displayNames(db, [...new Set(history.flatMap(mentionedUsers))]);
          return history.map((row) => ({
            ...row,
            summary: describeEvent(row, names),
            changes: row.redacted ? null : row.changes,
            actor:
              row.actor === null ? null : { userId: row.actor, displayName: names.get(row.actor) ?? null },
          }));
        });
        return queries.map((q) => rows.filter((row) => row.commitmentId === q.obj.id));
      },
    },
  };

  return { resolvers, loaders };
}
