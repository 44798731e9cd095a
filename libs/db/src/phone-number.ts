// A person's phone number at rest (phone_numbers.phone): sealed under their data key and bound to
// their row, so erasing them shreds it and a number moved to another person's row does not open.
// Nobody is looked up by number, so no blind index is kept: a number is compared once opened.
import { phoneField as fieldOf } from './clear-fields.ts';
import type { FieldCipher } from './field-cipher.ts';

/** The number (E.164) as stored; null when the person's key is erased (store nothing then). */
export async function sealPhone(cipher: FieldCipher, userId: string, phone: string): Promise<Buffer | null> {
  const [sealed] = await cipher.seal([{ ...fieldOf(userId), value: phone }]);
  return sealed ?? null;
}

/** Each stored row's number; undefined where its person's key is erased. Throws SealBroken for one moved or altered. */
export function openPhones(
  cipher: FieldCipher,
  rows: readonly { user_id: string; phone: Uint8Array }[],
): Promise<(string | undefined)[]> {
  return cipher.open<string>(rows.map((row) => ({ ...fieldOf(row.user_id), stored: row.phone })));
}
