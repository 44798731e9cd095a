// The ledger bench's peer: the same single-event appends from the same number of clients through
// Emmett's PostgreSQL event store (@event-driven-io/emmett-postgresql), in a process of its own:
// its driver sets pg's global type parsers (int8 as BigInt, JSON its own way), which would change
// what the ledger reads in the bench's process. Prints {perSecond, latenciesMs} as JSON.
//   node --import tsx bench/emmett-peer.ts URL CLIENTS SECONDS
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql';
import pg from 'pg';
import { benchEvent, closedLoop } from './support.ts';

const [url, clients, seconds] = process.argv.slice(2);
if (!url || !clients || !seconds) throw new Error('usage: emmett-peer.ts URL CLIENTS SECONDS');

const pool = new pg.Pool({ connectionString: url, max: Number(clients) });
const store = getPostgreSQLEventStore(url, { connectionOptions: { pool } });
const append = (c: number, i: number) =>
  store.appendToStream(`emmett-${c}`, [benchEvent(c, i)]).then(() => undefined);
// The schema is made on first use, and connections opened: not timed.
await closedLoop(Number(clients), 1, append);
const result = await closedLoop(Number(clients), Number(seconds), append);
await store.close();
await pool.end();
process.stdout.write(JSON.stringify({ perSecond: result.perSecond, latenciesMs: result.latenciesMs }));
