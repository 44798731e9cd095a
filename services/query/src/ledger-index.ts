import { badRequest } from '@connect/http';

/** A ledger index or size as sent in a path, query or header: a non-negative safe integer, else 400 naming `path`. */
export function parseLedgerIndex(raw: string | undefined, path: string): number {
  if (raw === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
    throw badRequest([{ path, message: 'must be a ledger index (a non-negative integer)' }]);
  }
  return Number(raw);
}
