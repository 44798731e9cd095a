import type { Entry } from '@connect/ledger';
import { ENTRY_REDACTED, REDACTIONS_STREAM } from '@connect/ledger';

/** The stream of the entry an EntryRedacted event says was redacted; undefined for any other entry. */
export function redactedStream(entry: Entry): string | undefined {
  if (entry.stream !== REDACTIONS_STREAM || entry.type !== ENTRY_REDACTED || entry.data === null)
    return undefined;
  const stream = (entry.data as { stream?: unknown }).stream;
  return typeof stream === 'string' ? stream : undefined;
}

/** The index an EntryRedacted event names. */
export const redactedIndex = (entry: Entry): number => Number((entry.data as { index?: unknown })?.index);
