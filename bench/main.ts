// npm run bench -- [suite…]   (suites: ledger, commands, queries, verify, notifications, notifier,
// delivery-floors, reminders, import, crypto, load; default: all)
// Prints a table and, when BENCH_OUT names a file, merges the figures into it as JSON.
import { benchCommands } from './commands.ts';
import { benchCrypto } from './crypto.ts';
import { benchDeliveryFloors } from './delivery-floors.ts';
import { benchImport } from './import.ts';
import { benchLedger } from './ledger.ts';
import { benchLoad } from './load.ts';
import { benchNotifications } from './notifications.ts';
import { benchNotifier } from './notifier.ts';
import { benchQueries } from './queries.ts';
import { benchReminders } from './reminders.ts';
import { type Metrics, writeResults } from './support.ts';
import { benchVerify } from './verify.ts';

const SUITES: Record<string, () => Promise<Metrics>> = {
  ledger: benchLedger,
  commands: benchCommands,
  queries: benchQueries,
  verify: benchVerify,
  notifications: benchNotifications,
  notifier: benchNotifier,
  'delivery-floors': benchDeliveryFloors,
  reminders: benchReminders,
  import: benchImport,
  crypto: benchCrypto,
  load: benchLoad,
};

const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const unknown = requested.filter((name) => !(name in SUITES));
if (unknown.length > 0) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; known: ${Object.keys(SUITES).join(', ')}`);
  process.exit(2);
}
const metrics: Metrics = {};
for (const name of requested.length > 0 ? requested : Object.keys(SUITES)) {
  console.log(`== ${name}`);
  Object.assign(metrics, await (SUITES[name] as () => Promise<Metrics>)());
}
await writeResults(metrics);
