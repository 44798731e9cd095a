// One PostgreSQL for the whole run: DATABASE_URL when set, else an embedded one in a temporary
// directory. Each test file then makes its own database in it (test/support/database.ts).
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '@connect/db';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}

export default async function setup(project: TestProject) {
  if (process.env.DATABASE_URL) {
    project.provide('adminUrl', process.env.DATABASE_URL);
    return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'connect-test-'));
  await chmod(dir, 0o711); // as root, the server runs as the postgres user, which must enter it
  const embedded = await startEmbeddedPostgres(dir);
  project.provide('adminUrl', embedded.url);
  return async () => {
    await embedded.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
