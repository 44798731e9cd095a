// A page cursor: the keyset (createdAt, id) of the last commitment a page gave, opaque to clients.
import { z } from 'zod';

export interface CursorKey {
  createdAt: string;
  id: string;
}

const cursorShape = z.tuple([z.iso.datetime({ offset: true }), z.uuid()]);

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify([key.createdAt, key.id])).toString('base64url');
}

/** The keyset a cursor holds; undefined for anything this API did not give out. */
export function readCursor(cursor: string): CursorKey | undefined {
  try {
    const [createdAt, id] = cursorShape.parse(JSON.parse(Buffer.from(cursor, 'base64url').toString()));
    return { createdAt, id };
  } catch {
    return undefined;
  }
}
