// Statements run so often that each connection should parse and plan them once, as the ledger's
// append is: a Kysely query marked `prepared` runs under a name of its own. Only fixed texts are
// marked (arrays as parameters, never an `in (…)` list whose length varies), since a connection
// keeps every statement it prepared. Every statement prepared here names its result's columns.
import { createHash } from 'node:crypto';
import type { CompiledQuery, PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';

const nameByText = new Map<string, string>();
const textByName = new Map<string, string>();

/**
 * A result given as `*` (`select *`, `select t.*`, `, t.*`, `returning *`): PostgreSQL expands it
 * as it prepares the statement, and once a migration adds a column it refuses every later run on
 * that connection ("cached plan must not change result type"). `select * from unnest(…)` is
 * fixed by its parameters' types.
 */
const STAR_RESULT =
  /(?:\b(?:select\s+(?:distinct\s+)?|returning\s+)|,\s*)(?:"?\w+"?\.\*|\*(?!\s*from\s+unnest\s*\())/i;

/** Refuses a statement to be prepared whose result is given as `*`: it must name its columns. */
export function mustNameItsColumns(text: string): void {
  if (STAR_RESULT.test(text))
    throw new Error(`a prepared statement must name its result's columns, not *: ${text.slice(0, 200)}`);
}

/** `query`, to be prepared under `name` on each connection that runs it. */
export function prepared<R>(name: string, query: CompiledQuery<R>): CompiledQuery<R> {
  const text = textByName.get(name);
  if (text === undefined) {
    mustNameItsColumns(query.sql);
    textByName.set(name, query.sql);
    nameByText.set(query.sql, name);
  } else if (text !== query.sql) {
    throw new Error(`the prepared statement ${name} was given another text: its text must not vary`);
  }
  return query;
}

/** A pool for Kysely whose clients run the statements marked `prepared` by name. */
export function namedStatementsPool(pool: pg.Pool): PostgresPool {
  return {
    connect: async () => {
      const client = await pool.connect();
      return { ...namedStatementsOn(client), release: (destroy?: boolean) => client.release(destroy) };
    },
    end: () => pool.end(),
  };
}

/** Kysely's query on `client`, running the statements marked `prepared` by name. */
export function namedStatementsOn(client: pg.ClientBase): Pick<PostgresPoolClient, 'query'> {
  return {
    query: ((text: unknown, values?: readonly unknown[]) => {
      const name = typeof text === 'string' ? nameByText.get(text) : undefined;
      if (name === undefined) return client.query(text as string, values as unknown[]);
      return client.query({ name, text: text as string, values: values as unknown[] });
    }) as unknown as PostgresPoolClient['query'],
  };
}

const checkedTextByName = new Map<string, string>();

/**
 * A statement given to pg under a name of its own (`{ name, text, values }`), which each
 * connection that runs it keeps: its text checked as `prepared` checks a Kysely query's, once.
 */
export function named<C extends { name: string; text: string }>(config: C): C {
  if (checkedTextByName.get(config.name) !== config.text) {
    mustNameItsColumns(config.text);
    checkedTextByName.set(config.name, config.text);
  }
  return config;
}

const hashedNames = new Map<string, string>();
const MAX_HASHED_NAMES = 10_000;

/**
 * A statement's name derived from its text, remembered: looking it up costs less than hashing the
 * text again, and a hot read asks for it on every call.
 */
export function statementNameOf(text: string): string {
  let name = hashedNames.get(text);
  if (name === undefined) {
    mustNameItsColumns(text);
    name = `q-${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
    if (hashedNames.size >= MAX_HASHED_NAMES) hashedNames.clear();
    hashedNames.set(text, name);
  }
  return name;
}

/**
 * A pg query prepared under a name derived from its text, for statements whose text is fixed at
 * each call site but names tables chosen at run time (a projection's live or replay tables).
 */
export function preparedQuery(text: string, values: unknown[]): pg.QueryConfig {
  return { name: statementNameOf(text), text, values };
}
