import { loadConfig, migrate, openDatabase } from '@connect/db';

export async function migrateCommand(): Promise<number> {
  const database = await openDatabase(loadConfig(process.env));
  try {
    const { applied } = await migrate(database.pool);
    console.log(
      applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`,
    );
    return 0;
  } finally {
    await database.close();
  }
}
