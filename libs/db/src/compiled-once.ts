// A statement run on every request need not be built and compiled by Kysely on every request: its
// text never changes, only its values do. compiledOnce builds it the first time it runs, with
// placeholders where the values go, and each later call only puts its own values in their place
// (as Entity Framework's compiled queries do). On a read that costs little in PostgreSQL, building
// the query was most of the client's work. A statement whose clauses depend on which filters a
// call has (compiledPerShape) is compiled once for each combination of them.
import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** Where the first build was given the call's value named `key` (its position, for compiledOnce). */
class Placeholder {
  constructor(readonly key: string) {}
}

/** Which optional parts a statement has: a flag for each, none of them a value. */
export type Shape = Record<string, boolean>;

interface Compiled<Row> {
  query: CompiledQuery<Row>;
  /** For each parameter of the statement, the key of the call's value that goes there. */
  keys: (string | undefined)[];
  /** The keys of the values this statement leaves out: undefined at every call. */
  unused: string[];
}

/**
 * `build` run once and compiled, then run with each call's values. `build` must hand every value
 * to Kysely as a value (a parameter of the statement), never test it or take it apart: it sees
 * placeholders, not the values. A value that does not reach the statement's parameters is an
 * error at the first call.
 */
export function compiledOnce<Values extends unknown[], Row>(
  build: (db: Kysely<Database>, ...values: Values) => Compilable<Row>,
  mark?: (query: CompiledQuery<Row>) => CompiledQuery<Row>,
): (db: Kysely<Database>, ...values: Values) => Promise<Row[]> {
  let compiled: Compiled<Row> | undefined;
  return async (db, ...values) => {
    const byPosition = values as unknown as Record<string, unknown>;
    compiled ??= compile(
      (placeholder) => build(db, ...(values.map((_, i) => placeholder(String(i))) as Values)),
      byPosition,
      { optional: false, mark },
    );
    return run(db, compiled, byPosition);
  };
}

/**
 * compiledOnce for a statement whose clauses depend on what a call asks for: each call gives a
 * shape (flags saying which optional clauses it has) and its values by name, and `build` decides
 * on the shape alone, with placeholders for the values. Each shape is compiled once, at its first
 * call. A value the shape leaves out must be undefined.
 */
export function compiledPerShape<S extends Shape, Values extends Record<string, unknown>, Row>(
  build: (db: Kysely<Database>, shape: S, values: Values) => Compilable<Row>,
  mark?: (query: CompiledQuery<Row>) => CompiledQuery<Row>,
): (db: Kysely<Database>, shape: S, values: Values) => Promise<Row[]> {
  const byShape = new Map<string, Compiled<Row>>();
  return async (db, shape, values) => {
    const key = Object.entries(shape)
      .map(([name, on]) => (on ? name : ''))
      .join(',');
    let compiled = byShape.get(key);
    if (!compiled) {
      // A placeholder for every value the build reads, whether or not this call has it.
      const placeholders = (placeholder: (name: string) => Placeholder) =>
        new Proxy({} as Values, {
          get: (_, name) => (typeof name === 'string' ? placeholder(name) : undefined),
        });
      compiled = compile((placeholder) => build(db, shape, placeholders(placeholder)), values, {
        optional: true,
        mark,
      });
      byShape.set(key, compiled);
    }
    return run(db, compiled, values);
  };
}

/**
 * Builds with placeholders and finds where each lands. Every value of the first call must reach
 * the statement's parameters, or, when values are `optional`, be undefined.
 */
function compile<Row>(
  build: (placeholder: (name: string) => Placeholder) => Compilable<Row>,
  values: Record<string, unknown>,
  options: { optional: boolean; mark?: (query: CompiledQuery<Row>) => CompiledQuery<Row> },
): Compiled<Row> {
  const made = new Map<string, Placeholder>();
  const placeholder = (name: string) => {
    const known = made.get(name) ?? new Placeholder(name);
    made.set(name, known);
    return known;
  };
  const built = build(placeholder).compile();
  const query = options.mark ? options.mark(built) : built;
  const keys = query.parameters.map((value) => (value instanceof Placeholder ? value.key : undefined));
  const names = new Set([...Object.keys(values), ...made.keys()]);
  const unused = [...names].filter((name) => !keys.includes(name));
  const lost = options.optional ? unused.filter((name) => values[name] !== undefined) : unused;
  if (lost.length > 0) {
    throw new Error(`compiled statement: ${describe(lost)} never reached the statement's parameters`);
  }
  return { query, keys, unused };
}
async function run<Row>(db: Kysely<Database>, compiled: Compiled<Row>, values: Record<string, unknown>) {
  const { query, keys, unused } = compiled;
  const stray = unused.filter((name) => values[name] !== undefined);
  if (stray.length > 0) {
    throw new Error(`compiled statement: ${describe(stray)} is set, but its statement's shape leaves it out`);
  }
  const parameters = keys.map((key, i) => (key === undefined ? query.parameters[i] : values[key]));
  return (await db.executeQuery<Row>({ ...query, parameters })).rows;
}

/** Values by name, or by their place in the call (from 1) for compiledOnce's. */
const describe = (names: string[]) =>
  `value ${names.map((name) => (/^\d+$/.test(name) ? String(Number(name) + 1) : name)).join(', ')}`;
