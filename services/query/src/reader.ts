// Every read of the read models runs here, logged in as connect_reader (a login role that can only
// SELECT, has no BYPASSRLS and cannot become another role) with the caller's id set for the
// statement's own transaction, so row-level security decides what each statement sees.
//
// Reads are most of the query service's work and round trips are most of a read's cost, so the
// caller is not set by a statement of its own: each statement goes out as one pipeline
// `set_config(caller) ; statement ; Sync`, which PostgreSQL runs as one implicit transaction.
// A statement outside readAs() has no caller and is refused before it is sent.
import {
  createPool,
  type Database,
  DEFAULT_READ_POOL_SIZE,
  DEFAULT_READ_TIMEOUT_MS,
  isConnectionWaitOver,
  PipelinedQuery,
  READER_ROLE,
  readerUrlFor,
  statementNameOf,
} from '@connect/db';
import { readsEverything, type UserRole } from '@connect/domain';
import {
  type CompiledQuery,
  type ConnectionProvider,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  type KyselyConfig,
  type LogEvent,
  PostgresDialect,
  type QueryResult,
} from 'kysely';
import pg from 'pg';

export interface Caller {
  userId: string;
  /** Reads everything (row-level security's connect.admin): an admin or an auditor. */
  isAdmin: boolean;
  /** The roles held as of this request (from the session check, not the token). */
  roles?: readonly UserRole[];
}

/** The caller of an authenticated request or connection. */
export const callerFromClaims = (claims: { userId: string; roles: readonly UserRole[] }): Caller => ({
  userId: claims.userId,
  isAdmin: readsEverything(claims.roles),
  roles: claims.roles,
});

export type Reader = Kysely<Database>;

export interface ReaderDb {
  db: Kysely<Database>;
  /** Its connections (for /metrics). */
  pool: pg.Pool;
  close(): Promise<void>;
}

/** PostgreSQL's SQLSTATE for a statement stopped (at its statement_timeout, among others). */
const QUERY_CANCELED = '57014';
const SET_CALLER = "select set_config('connect.user_id', $1, true), set_config('connect.admin', $2, true)";
/** SET_CALLER's name on each read connection, prepared as it opens (it goes with every read). */
const SET_CALLER_STATEMENT = 'set-caller';
const NO_CALLER = 'read-model statements run only inside readAs(), with a caller';

/** A client for the reader pool: every statement carries the caller of the read it belongs to. */
class ReaderClient extends pg.Client {
  /** Parses SET_CALLER under its name (a Parse message, as a pooler that keeps prepared statements expects). */
  prepareSetCaller(): Promise<unknown> {
    return super.query({ name: SET_CALLER_STATEMENT, text: SET_CALLER, values: ['', 'off'] });
  }

  /** `text` as `caller`: one pipeline of SET_CALLER, the statement and a Sync. */
  queryAs(caller: Caller, text: string, values: readonly unknown[]): Promise<pg.QueryResult> {
    // Named after its text, each statement shape is parsed and planned once per connection (the
    // pool asks for generic plans, below).
    const config = { name: statementNameOf(text), text, values: [...values] };
    const setCaller = {
      text: SET_CALLER,
      preparedAs: SET_CALLER_STATEMENT,
      values: [caller.userId, caller.isAdmin ? 'on' : 'off'],
    };
    return new Promise((resolve, reject) => {
      (super.query as (q: unknown) => unknown)(
        new PipelinedQuery(config, [setCaller], [], (error, result) =>
          error ? reject(error) : resolve(result as pg.QueryResult),
        ),
      );
    });
  }

  /** Nothing is sent without a caller. */
  override query(): never {
    throw new Error(NO_CALLER);
  }
}

type ReaderPoolClient = ReaderClient & pg.PoolClient;

/** A read connection, and the caller of the read that holds it. */
class ReaderConnection implements DatabaseConnection {
  /** Set when a read made by readAs() takes the connection, cleared when it gives it back. */
  caller: Caller | undefined;

  constructor(readonly client: ReaderPoolClient) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    if (!this.caller) throw new Error(NO_CALLER);
    const { rows } = await this.client.queryAs(this.caller, query.sql, query.parameters);
    return { rows };
  }

  streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('reads are not streamed');
  }
}

const refuseTransaction = () => Promise.reject(new Error('reads run outside explicit transactions'));

/**
 * Kysely's driver for the reader pool. Reads are single statements, each its own implicit
 * transaction (the caller is set for it alone), so there are no explicit transactions here. Every
 * read's Kysely shares it and its pool, which only ReaderDb.close() ends.
 */
class ReaderDriver implements Driver {
  readonly #connections = new WeakMap<pg.PoolClient, ReaderConnection>();

  constructor(
    readonly pool: pg.Pool,
    readonly timeoutMs: number,
  ) {}

  async init(): Promise<void> {}

  async acquireConnection(): Promise<ReaderConnection> {
    const client = (await this.pool.connect().catch((error: unknown) => {
      throw waitedTooLong(error, this.timeoutMs);
    })) as ReaderPoolClient;
    let connection = this.#connections.get(client);
    if (!connection) {
      connection = new ReaderConnection(client);
      this.#connections.set(client, connection);
    }
    return connection;
  }

  async releaseConnection(connection: ReaderConnection): Promise<void> {
    connection.caller = undefined;
    connection.client.release();
  }

  beginTransaction = refuseTransaction;
  commitTransaction = refuseTransaction;
  rollbackTransaction = refuseTransaction;

  destroy(): Promise<void> {
    return Promise.reject(new Error('the reader is closed by ReaderDb.close(), not by a read'));
  }
}

/**
 * Reads get a connection within their time limit or not at all: a read that waited that long (the
 * pool busy, or a server that does not answer a new connection) fails as one PostgreSQL stopped
 * at its statement_timeout does (57014, query_canceled), and is answered the same way.
 */
function waitedTooLong(error: unknown, timeoutMs: number): unknown {
  if (!isConnectionWaitOver(error)) return error;
  return Object.assign(new Error(`no read connection came free within ${timeoutMs} ms`, { cause: error }), {
    code: QUERY_CANCELED,
  });
}

/** For each reader createReaderDb made: the same reader, its statements run as `caller`. */
const readersAs = new WeakMap<Kysely<Database>, (caller: Caller) => Reader>();

/**
 * The connections reads go through: logged in as connect_reader, read-only, each statement
 * stopped after `timeoutMs` (a read held up behind a lock frees its connection and answers 503,
 * rather than holding it while the reads behind it queue), and no read waiting longer than that
 * for a connection. A `url` with another user (a test's database) logs in as connect_reader
 * there, without a password.
 */
export function createReaderDb(
  url: string,
  options: { max?: number; timeoutMs?: number; log?(event: LogEvent): void } = {},
): ReaderDb {
  const login = new URL(url).username === READER_ROLE ? url : readerUrlFor(url);
  const timeoutMs = options.timeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  const max = options.max ?? DEFAULT_READ_POOL_SIZE;
  const pool = createPool(login, max, {
    // Once open, a read connection stays open. pg's pool hands out the connection released last,
    // so under a steady load the same few serve every read while the rest sit idle until they are
    // closed (a minute); the next burst then waits for new ones to log in and prepare their
    // statements, in the path of the reads that make the burst.
    min: max,
    connectionTimeoutMillis: timeoutMs,
    // On the generic plans of every pool (createPool): reads here start from an index by party,
    // recipient or id, whatever the values.
    options: `-c default_transaction_read_only=on -c statement_timeout=${timeoutMs}`,
    Client: ReaderClient,
    // Awaited by the pool before it hands the connection out; a failure ends the connection.
    onConnect: (client) => (client as ReaderClient).prepareSetCaller(),
  });
  const driver = new ReaderDriver(pool, timeoutMs);
  const postgres = new PostgresDialect({ pool });
  const dialect: Dialect = {
    createAdapter: () => postgres.createAdapter(),
    createDriver: () => driver,
    createIntrospector: (db) => postgres.createIntrospector(db),
    createQueryCompiler: () => postgres.createQueryCompiler(),
  };
  const config: KyselyConfig = { dialect, log: options.log };
  const db = new Kysely<Database>(config);
  const executor = db.getExecutor();
  readersAs.set(db, (caller) => {
    // Each statement's connection is told the caller as the read takes it; the driver forgets it
    // as the read gives it back. Kysely's own executor does the rest (plugins, logging).
    const asCaller: ConnectionProvider = {
      provideConnection: (consume) =>
        executor.provideConnection((connection) => {
          (connection as ReaderConnection).caller = caller;
          return consume(connection);
        }),
    };
    return new Kysely<Database>({
      config,
      dialect,
      driver,
      executor: executor.withConnectionProvider(asCaller),
    });
  });
  return { db, pool, close: async () => (pool.ended ? undefined : pool.end()) };
}

/**
 * Runs `read` as `caller`: every statement it sends through the reader it is handed carries the
 * caller, so row-level security decides what it sees. The caller goes with the reader, not with
 * the async context, so no async hook runs for every promise of the process.
 */
export function readAs<T>(
  reader: Kysely<Database>,
  caller: Caller,
  read: (db: Reader) => Promise<T>,
): Promise<T> {
  const asCaller = readersAs.get(reader);
  if (!asCaller) return Promise.reject(new Error('readAs() reads through a reader made by createReaderDb()'));
  return read(asCaller(caller));
}
