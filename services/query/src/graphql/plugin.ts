// /graphql (queries over HTTP, subscriptions over graphql-ws on the same path) and /graphiql.
import { type Authenticate, authenticateBearer, type SessionGate, type TokenIssuer } from '@connect/auth';
import { type Database, NOTIFICATIONS_PROJECTION } from '@connect/db';
import { databaseTrouble, HttpProblem, sendProblem } from '@connect/http';
import type { BodyCipher } from '@connect/ledger';
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { GraphQLError } from 'graphql';
import type { Kysely } from 'kysely';
import mercurius, { type MercuriusOptions } from 'mercurius';
import type pg from 'pg';
import { z } from 'zod';
import { commitmentsById } from '../commitments/queries.ts';
import { minIndexOf, readConsistency } from '../consistency.ts';
import { type NotificationView, notificationsSince } from '../notifications/queries.ts';
import type { ProjectedIndex } from '../projected-index.ts';
import { type Caller, callerFromClaims, readAs } from '../reader.ts';
import {
  CLOSE_GOING_AWAY,
  type Connection,
  connections as openConnections,
  type SubscriptionLimits,
} from './connections.ts';
import {
  announceChanges,
  announceNotifications,
  type ChangedCommitment,
  changeTopics,
  commitmentTopic,
  notificationFeed,
  userTopic,
} from './fanout.ts';
import { graphiqlRoutes } from './graphiql.ts';
import { refuseTooCostly, refuseTooDeep, refuseTooLarge } from './limits.ts';
import { replaceMercuriusSocketReader } from './message-reader.ts';
import { reachOf } from './reach.ts';
import { type GraphqlContext, graphqlResolvers } from './resolvers.ts';
import { schema } from './schema.ts';
import { refuseUnstorableText } from './text-input.ts';

export const MAX_DEPTH = 8;

const UNAVAILABLE = 'SERVICE_UNAVAILABLE';

/**
 * Every error gets a code; one no resolver meant to show keeps its details in the log. The
 * database stopping a statement at its time limit, or giving no connection, is SERVICE_UNAVAILABLE.
 */
const formatErrors: NonNullable<MercuriusOptions['errorFormatter']> = (execution, context) => {
  const errorsCoded = execution.errors?.map((error) => {
    const trouble = databaseTrouble(error.originalError);
    return trouble
      ? new GraphQLError(trouble.detail, {
          nodes: error.nodes,
          path: error.path,
          extensions: { code: UNAVAILABLE },
        })
      : error;
  });
  const formatted = mercurius.defaultErrorFormatter({ ...execution, errors: errorsCoded ?? [] }, context);
  const errors = (formatted.response.errors ?? []).map((error) => {
    if (error.extensions?.code) return error;
    if (error.path) {
      return {
        ...error,
        message: 'Something went wrong on our side; try again.',
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      };
    }
    return { ...error, extensions: { ...error.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } };
  });
  return { statusCode: formatted.statusCode, response: { ...formatted.response, errors } };
};

export interface GraphqlDeps {
  reader: Kysely<Database>;
  pool: pg.Pool;
  /** Its `fields` open the sealed fields read (the notifications' text). */
  cipher: BodyCipher;
  authenticate: Authenticate;
  tokens: TokenIssuer;
  sessions: SessionGate;
  projectedIndex: ProjectedIndex;
  minIndexWaitMs?: number;
  subscriptions?: SubscriptionLimits;
}

type SubscriptionContext = GraphqlContext;

declare module 'mercurius' {
  interface MercuriusContext {
    /** Over a WebSocket: its connection (from mercurius' subscription context). */
    connection?: Connection;
  }
}

function connectionOf(ctx: SubscriptionContext): Connection {
  if (!ctx.connection) throw new Error('subscriptions run over a WebSocket');
  return ctx.connection;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

export async function graphqlRoutes(app: FastifyInstance, deps: GraphqlDeps): Promise<void> {
  const { reader } = deps;
  const { resolvers, loaders } = graphqlResolvers(reader, deps.pool, deps.cipher.fields);
  const { ErrorWithProps, withFilter } = mercurius;
  // Connect-Min-Index: a document that reads or marks notifications waits for the notifier too.
  const consistent = {
    'read-models': readConsistency(deps.projectedIndex, deps.minIndexWaitMs, 'read-models'),
    'with-notifications': readConsistency(deps.projectedIndex, deps.minIndexWaitMs, 'with-notifications'),
  };
  const connections = openConnections({ sessions: deps.sessions, limits: deps.subscriptions });
  const topics = changeTopics(connections);
  const notifications = notificationFeed(connections, () =>
    deps.projectedIndex.positionOf(NOTIFICATIONS_PROJECTION),
  );
  app.addHook('onClose', async () => connections.close());

  // A WebSocket's caller was set at connection_init; its roles are taken again from the session
  // check (remembered for about a minute, forgotten when they change) for each operation and message.
  // False when the session has ended.
  const refreshCaller = async (ctx: SubscriptionContext): Promise<boolean> => {
    const access = await deps.sessions.check(ctx.sessionId ?? '');
    if (!access) return false;
    ctx.caller = callerFromClaims({ userId: ctx.caller.userId, roles: access.roles });
    return true;
  };

  // Still a party, and the session still open, when each change arrives.
  const stillEntitled = async (change: ChangedCommitment, _args: unknown, ctx: SubscriptionContext) =>
    change.parties.includes(ctx.caller.userId) && (await refreshCaller(ctx));
  // A subscription's own reads (its admission, what it sends): one stopped at its time limit
  // (CONNECT_READ_TIMEOUT_MS) or given no connection ends it with a coded error, which no
  // resolver's formatting gives.
  const readForSubscriber = <T>(caller: Caller, read: (db: Kysely<Database>) => Promise<T>): Promise<T> =>
    readAs(reader, caller, read).catch((error: unknown) => {
      const trouble = databaseTrouble(error);
      throw trouble ? new ErrorWithProps(trouble.detail, { code: UNAVAILABLE }) : error;
    });
  const load = async (change: ChangedCommitment, _args: unknown, ctx: SubscriptionContext) => {
    const [commitment] = await readForSubscriber(ctx.caller, (db) =>
      commitmentsById(db, deps.cipher.fields, [change.id]),
    );
    if (!commitment) throw new ErrorWithProps('no longer visible to you', { code: 'NOT_FOUND' });
    return commitment;
  };

  // Every operation on a WebSocket checks the session its connection_init authenticated; a sweep
  // closes the connections of sessions that end in between (connections.ts).
  const admit = async (ctx: SubscriptionContext) => {
    if (!ctx.connection) return;
    if (!(await connections.admit(ctx.connection, ctx.sessionId)) || !(await refreshCaller(ctx))) {
      throw new ErrorWithProps('This session has ended; log in again.', { code: 'UNAUTHENTICATED' });
    }
  };

  resolvers.Subscription = {
    commitmentChanged: {
      subscribe: withFilter(async (_root: unknown, { id }: { id: string }, ctx: SubscriptionContext) => {
        const notFound = () =>
          new ErrorWithProps(`No commitment ${id}, or you are not a party to it.`, { code: 'NOT_FOUND' });
        if (!z.uuid().safeParse(id).success) throw notFound();
        // Listening before the visibility read, so a change made while it runs is not missed
        // (what is sent is filtered and read as the subscriber in any case).
        const changes = topics.subscribe(commitmentTopic(id), connectionOf(ctx));
        try {
          const visible = await readForSubscriber(ctx.caller, (db) =>
            commitmentsById(db, deps.cipher.fields, [id]),
          );
          if (visible.length !== 1) throw notFound();
          return changes;
        } catch (error) {
          await changes.return?.();
          throw error;
        }
      }, stillEntitled),
      resolve: load,
    },
    myCommitments: {
      subscribe: withFilter(
        (_root: unknown, _args: unknown, ctx: SubscriptionContext) =>
          topics.subscribe(userTopic(ctx.caller.userId), connectionOf(ctx)),
        stillEntitled,
      ),
      resolve: load,
    },
    // Read as the subscriber (row-level security) when sent; the session is checked for each one.
    notificationAdded: {
      subscribe: withFilter(
        (_root: unknown, _args: unknown, ctx: SubscriptionContext) =>
          notifications.subscribe(ctx.caller.userId, connectionOf(ctx), (after, upTo, limit) =>
            readForSubscriber(ctx.caller, (db) =>
              notificationsSince(db, deps.cipher.fields, ctx.caller.userId, after, upTo, limit),
            ),
          ),
        async (_notification: NotificationView, _args: unknown, ctx: SubscriptionContext) =>
          refreshCaller(ctx),
      ),
      resolve: (notification: NotificationView) => notification,
    },
  };

  // Queries over HTTP need a bearer token (401 before any GraphQL runs) and honour Connect-Min-Index;
  // subscriptions authenticate in connection_init instead, since browsers cannot set WebSocket
  // headers. A malformed Connect-Min-Index is refused and every answer says its index before
  // GraphQL runs; the wait comes once the document is known (preExecution below).
  app.addHook('preValidation', async (request, reply) => {
    if (request.routeOptions.url !== '/graphql' || request.headers.upgrade?.toLowerCase() === 'websocket')
      return;
    const claims = await deps.authenticate(request);
    request.caller = callerFromClaims(claims);
    minIndexOf(request);
    reply.header('connect-index', String(deps.projectedIndex.current('with-notifications')));
  });

  await app.register(graphiqlRoutes);
  // The WebSocket server mercurius would register, with the same payload bound, but closing its
  // connections with 1001 "going away" when the server shuts down, so clients reconnect elsewhere.
  await app.register(websocket, {
    options: { maxPayload: 1024 * 1024 },
    preClose(done) {
      for (const client of this.websocketServer.clients) {
        client.close(CLOSE_GOING_AWAY, 'Going away: the server is shutting down');
      }
      done();
    },
  });
  // Process-wide, and the same for every app: each subscription socket then holds ~35 KB less heap.
  replaceMercuriusSocketReader();
  await app.register(mercurius, {
    schema,
    resolvers,
    loaders,
    // mercurius's GraphiQL loads from a CDN; ours is served from node_modules (graphiql.ts).
    graphiql: false,
    queryDepth: MAX_DEPTH,
    context: (request) => ({ caller: request.caller }),
    errorFormatter: formatErrors,
    // A refusal before GraphQL runs (401) stays a problem+json; anything else is a GraphQL error.
    errorHandler: async (error, _request, reply) => {
      if (error instanceof HttpProblem) {
        sendProblem(reply, error.body);
        return;
      }
      const graphqlError =
        error instanceof GraphQLError ? error : new GraphQLError(error.message, { originalError: error });
      const { statusCode, response } = formatErrors({ errors: [graphqlError] }, { reply, app } as never);
      reply.code(statusCode).send(response);
    },
    subscription: {
      fullWsTransport: true,
      context: (socket) => ({ connection: connections.open(socket) }),
      onConnect: async ({ payload }) => {
        const header =
          typeof payload?.authorization === 'string'
            ? payload.authorization
            : typeof payload?.token === 'string'
              ? `Bearer ${payload.token}`
              : undefined;
        try {
          const claims = await authenticateBearer(deps, header);
          return { caller: callerFromClaims(claims), sessionId: claims.sessionId };
        } catch {
          return false;
        }
      },
    },
  });

  // A document is bounded before graphql-js parses and validates it (see limits.ts), and costed again
  // once its variables are known. Subscriptions, which mercurius neither validates nor costs, get the
  // same bounds.
  app.graphql.addHook('preParsing', async (_schema, source) => refuseTooLarge(source));
  app.graphql.addHook('preValidation', async (_schema, document) => {
    refuseTooDeep(document);
    refuseTooCostly(document);
  });
  app.graphql.addHook('preExecution', async (_schema, document, context, variables) => {
    refuseTooCostly(document, variables ?? {});
    refuseUnstorableText(document, variables ?? {});
    await admit(context);
    if (!context.connection) await consistent[reachOf(document)](context.reply.request, context.reply);
  });
  app.graphql.addHook('preSubscriptionParsing', async (_schema, source) => refuseTooLarge(source));
  app.graphql.addHook('preSubscriptionExecution', async (_schema, document, context) => {
    refuseTooDeep(document);
    refuseTooCostly(document);
    refuseUnstorableText(document);
    await admit(context);
  });

  const stop = announceChanges(deps, topics, (error) =>
    app.log.error({ err: error }, 'could not announce changes to subscribers'),
  );
  app.addHook('onClose', async () => stop());
  const stopNotifications = announceNotifications(deps, notifications, (error) =>
    app.log.error({ err: error }, 'could not announce notifications to subscribers'),
  );
  app.addHook('onClose', async () => stopNotifications());
}
