// A statement run on every request need not be built and compiled by Kysely on every request: its
// text never changes, only its values do. compiledOnce builds it the first time it runs, with
// placeholders where the values go, and each later call only puts its own values in their place
// (as Entity Framework's compiled queries do). On a read that costs little in PostgreSQL, building
// the query was most of the client's work.
import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** Where the first build was given the call's value at `position`. */
class Placeholder {
  constructor(readonly position: number) {}
}

/**
 * `build` run once and compiled, then run with each call's values. `build` must hand every value
 * to Kysely as a value (a parameter of the statement), never test it or take it apart: it sees
 * placeholders, not the values. A value that does not reach the statement's parameters is an
 * error at the first call.
 */
export function compiledOnce<Values extends unknown[], Row>(
  build: (db: Kysely<Database>, ...values: Values) => Compilable<Row>,
  mark: (query: CompiledQuery<Row>) => CompiledQuery<Row> = (query) => query,
): (db: Kysely<Database>, ...values: Values) => Promise<Row[]> {
  let compiled: { query: CompiledQuery<Row>; positions: (number | undefined)[] } | undefined;
  const compile = (db: Kysely<Database>, arity: number) => {
    const placeholders = Array.from({ length: arity }, (_, i) => new Placeholder(i));
    const query = mark(build(db, ...(placeholders as Values)).compile());
    const positions = query.parameters.map((value) =>
      value instanceof Placeholder ? value.position : undefined,
    );
    const missing = placeholders.filter((placeholder) => !positions.includes(placeholder.position));
    if (missing.length > 0) {
      throw new Error(
        `compiledOnce: value ${missing.map((p) => p.position + 1).join(', ')} never reached the statement's parameters`,
      );
    }
    return { query, positions };
  };
  return async (db, ...values) => {
    compiled ??= compile(db, values.length);
    const { query, positions } = compiled;
    const parameters = positions.map((position, i) =>
      position === undefined ? query.parameters[i] : values[position],
    );
    return (await db.executeQuery<Row>({ ...query, parameters })).rows;
  };
}
