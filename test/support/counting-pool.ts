// A pool whose connections count the statements they are given, and the most any one connection
// was given before those ahead of it settled (pg 9 no longer queues a statement sent while another
// runs, so code under test should never give a connection more than one at once).
import { createPool } from '@connect/db';
import type pg from 'pg';

export interface StatementCounter {
  statements: number;
  mostAtOnce: number;
}

export function countingPool(url: string, max: number): { pool: pg.Pool; counter: StatementCounter } {
  const counter: StatementCounter = { statements: 0, mostAtOnce: 0 };
  const pool = createPool(url, max);
  pool.on('connect', (client) => {
    let running = 0;
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    client.query = ((...args: unknown[]) => {
      counter.statements++;
      counter.mostAtOnce = Math.max(counter.mostAtOnce, ++running);
      const result = query(...args);
      if (typeof result?.finally !== 'function') throw new Error('this pool takes promise queries only');
      return result.finally(() => running--);
    }) as typeof client.query;
  });
  return { pool, counter };
}
