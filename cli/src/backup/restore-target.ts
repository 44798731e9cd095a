// Where `connect restore --to` stops replaying the WAL.
export type RestoreTarget =
  | { kind: 'latest' }
  | { kind: 'time'; time: Date }
  /** The ledger ends with the append (one transaction) that wrote entry `index`. */
  | { kind: 'index'; index: number };

export function parseRestoreTarget(text: string): RestoreTarget | undefined {
  if (text === 'latest') return { kind: 'latest' };
  if (/^\d+$/.test(text)) {
    const index = Number(text);
    return Number.isSafeInteger(index) ? { kind: 'index', index } : undefined;
  }
  // An ISO 8601 time with its offset (Z or ±hh:mm): a time without one would mean the server's zone.
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text)) {
    const time = new Date(text);
    return Number.isNaN(time.getTime()) ? undefined : { kind: 'time', time };
  }
  return undefined;
}

export function describeTarget(target: RestoreTarget): string {
  switch (target.kind) {
    case 'latest':
      return 'the newest state the backup and the WAL archive hold';
    case 'time':
      return target.time.toISOString();
    case 'index':
      return `ledger entry ${target.index}`;
  }
}
