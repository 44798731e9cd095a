// One statement with others sent ahead of it and after it in the same write, up to one Sync: one
// round trip instead of one each. The others' results are not wanted: `begin` before a
// transaction's first statement, `commit` after its last, a setting for the statement. Should one
// of them fail, PostgreSQL skips the rest up to the Sync and the query rejects with that error.
// pg's own pipeline mode does not fit: it is a whole client's, and puts a Sync after each query,
// so a failure would not stop what follows. This extends pg's Query instead.
import pg from 'pg';

/** A statement sent with another, its result discarded. */
export interface Companion {
  text: string;
  values?: unknown[];
  /** The name `text` is prepared under on every connection it is sent on: bound, never parsed. */
  preparedAs?: string;
}

interface Wire {
  parse(message: { text: string; name?: string; types?: unknown[] }): void;
  bind(message: {
    portal?: string;
    statement?: string;
    values: unknown[];
    binary?: boolean;
    valueMapper?: unknown;
  }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal?: string; rows: number }): void;
  close(message: { type: 'S'; name?: string }): void;
  sync(): void;
  submittedNamedStatements: Record<string, string>;
}

type Done = (error: Error | null, result?: pg.QueryResult) => void;

const BaseQuery = (pg as unknown as { Query: new (...args: unknown[]) => object }).Query;
const { prepareValue } = (pg as unknown as { utils: { prepareValue(value: unknown): unknown } }).utils;
const base = BaseQuery.prototype as {
  handleDataRow(message: unknown): void;
  handleCommandComplete(message: unknown, connection: unknown): void;
  handleError(error: unknown, connection: unknown): void;
};

/** pg's Query with companions: each completes before (or after) the statement's own result. */
export class PipelinedQuery extends BaseQuery {
  // Set by pg's Query from the config.
  declare readonly text: string;
  declare readonly name: string | undefined;
  declare readonly values: unknown[] | undefined;
  declare readonly types: unknown[] | undefined;
  declare readonly portal: string;
  declare readonly binary: boolean | undefined;
  declare hasBeenParsed: (connection: Wire) => boolean;
  /** Command completions still to come from the companions sent ahead. */
  private aheadLeft: number;
  private ownDone = false;

  constructor(
    config: pg.QueryConfig & { rows?: number },
    readonly before: readonly Companion[],
    readonly after: readonly Companion[],
    callback: Done,
  ) {
    // Paged rows would flush, not sync, and an empty statement completes with no CommandComplete:
    // neither could tell its companions' results from its own.
    if (config.rows) throw new Error('a pipelined query reads all its rows at once');
    if ([...before, ...after].some((companion) => companion.text.trim() === ''))
      throw new Error('a companion statement has no text');
    // Once only: a value that cannot be sent fails the query before its ReadyForQuery arrives.
    let settled = false;
    super(config, undefined, (error: Error | null, result?: pg.QueryResult) => {
      if (settled) return;
      settled = true;
      callback(error, result);
    });
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
      connection.sync();
      base.handleError.call(this, error, connection);
      return;
    }
    const { name, text, types } = this;
    // A named statement is parsed ahead of its companions: pg records it as parsed at the first
    // ParseComplete. The unnamed one is parsed after them, as they take the unnamed slot too.
    const parse = !this.hasBeenParsed(connection);
    if (parse && name) {
      connection.parse({ text, name, types });
      connection.submittedNamedStatements[name] = text;
    }
    for (const companion of before) send(connection, companion);
    if (parse && !name) connection.parse({ text, name, types });
    try {
      connection.bind({
        portal: this.portal,
        statement: name,
        values: this.values ?? [],
        binary: this.binary,
        valueMapper: prepareValue,
      });
    } catch (error) {
      // As pg's Query does when its values cannot be sent; and nothing after it is sent.
      connection.close({ type: 'S', name });
      connection.sync();
      base.handleError.call(this, error, connection);
      return;
    }
    connection.describe({ type: 'P', name: this.portal || '' });
    connection.execute({ portal: this.portal, rows: 0 });
    for (const companion of after) send(connection, companion);
    connection.sync();
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
function wireValues({ values = [], ...statement }: Companion): Companion {
  return { ...statement, values: values.map((value) => prepareValue(value)) };
}

function send(connection: Wire, { text, values = [], preparedAs }: Companion): void {
  if (preparedAs === undefined) connection.parse({ text, name: '', types: [] });
  connection.bind({ portal: '', statement: preparedAs ?? '', values });
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
