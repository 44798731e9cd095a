// One statement with others sent ahead of it and after it in the same write, up to one Sync: one
// round trip instead of one each. The others' results are not wanted: `begin` before a
// transaction's first statement, `commit` after its last, a setting for the statement. Should one
// of them fail, PostgreSQL skips the rest up to the Sync and the query rejects with that error.
// pg has no pipeline mode: this extends its Query, as a statement's wire messages are pg's to send.
import pg from 'pg';

/** A statement sent with another, its result discarded. */
export interface Companion {
  text: string;
  values?: unknown[];
}

interface Wire {
  parse(message: { text: string; name: string; types: unknown[] }): void;
  bind(message: { portal: string; statement: string; values: unknown[]; valueMapper?: unknown }): void;
  execute(message: { portal: string; rows: number }): void;
  sync(): void;
}

type Done = (error: Error | null, result?: pg.QueryResult) => void;

const BaseQuery = (pg as unknown as { Query: new (...args: unknown[]) => object }).Query;
const { prepareValue } = (pg as unknown as { utils: { prepareValue(value: unknown): unknown } }).utils;
const base = BaseQuery.prototype as {
  prepare(connection: Wire): void;
  handleDataRow(message: unknown): void;
  handleCommandComplete(message: unknown, connection: unknown): void;
  handleError(error: unknown, connection: unknown): void;
};

/** pg's Query with companions: each completes before (or after) the statement's own result. */
export class PipelinedQuery extends BaseQuery {
  /** The statement's own text (pg's Query sets it). */
  declare readonly text: string;
  /** Command completions still to come from the companions sent ahead. */
  private aheadLeft: number;
  private ownDone = false;

  constructor(
    config: pg.QueryConfig,
    readonly before: readonly Companion[],
    readonly after: readonly Companion[],
    callback: Done,
  ) {
    super(config, undefined, callback);
    this.aheadLeft = before.length;
  }

  requiresPreparation(): boolean {
    return true;
  }

  prepare(connection: Wire): void {
    let before: Companion[];
    let after: Companion[];
    try {
      [before, after] = [this.before.map(wireValues), this.after.map(wireValues)];
    } catch (error) {
      // As pg's own statement does when its values cannot be sent: nothing runs.
      connection.sync();
      base.handleError.call(this, error, connection);
      return;
    }
    for (const companion of before) send(connection, companion);
    const { sync } = connection;
    // The statement's own messages end in a Sync: the companions after it go just before that.
    connection.sync = () => {
      for (const companion of after) send(connection, companion);
      sync.call(connection);
    };
    try {
      base.prepare.call(this, connection);
    } finally {
      delete (connection as Partial<Wire>).sync;
    }
  }

  handleDataRow(message: unknown): void {
    if (this.aheadLeft === 0 && !this.ownDone) base.handleDataRow.call(this, message);
  }

  handleCommandComplete(message: unknown, connection: unknown): void {
    if (this.aheadLeft > 0) this.aheadLeft--;
    else if (!this.ownDone) {
      this.ownDone = true;
      base.handleCommandComplete.call(this, message, connection);
    }
  }
}

/** The values as pg sends a statement's own (numbers, dates, arrays, JSON as text). */
function wireValues({ text, values = [] }: Companion): Companion {
  return { text, values: values.map((value) => prepareValue(value)) };
}

function send(connection: Wire, { text, values = [] }: Companion): void {
  connection.parse({ text, name: '', types: [] });
  connection.bind({ portal: '', statement: '', values });
  connection.execute({ portal: '', rows: 0 });
}

/** `config` run on `client` in one round trip with `before` ahead of it and `after` behind it. */
export function queryPipelined<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.ClientBase,
  config: pg.QueryConfig,
  companions: { before?: readonly Companion[]; after?: readonly Companion[] },
): Promise<pg.QueryResult<R>> {
  return new Promise((resolve, reject) => {
    const query = new PipelinedQuery(
      config,
      companions.before ?? [],
      companions.after ?? [],
      (error, result) => (error ? reject(error) : resolve(result as pg.QueryResult<R>)),
    );
    client.query(query as unknown as pg.Submittable);
  });
}
