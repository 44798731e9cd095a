// Sensitive fields of the mutable tables and read models at rest: each value (any JSON) sealed
// under its subject's data key and bound to where it is stored (`<table>:<primary key>`, the
// logical table, never a replay's copy), so a value moved to another row does not open. With
// encryption off, values are stored as JSON in the clear; both kinds read, told apart by their
// first byte (a sealed value's format byte is never the first byte of JSON text).
import { open, SealBroken, seal } from '@connect/crypto/envelope';
import type { KeyRing } from './keyring.ts';
import { openedCache } from './opened-cache.ts';

/** A value to store, the subject whose key seals it, and the place that binds it. */
export interface FieldToSeal {
  subject: string;
  place: string;
  value: unknown;
}

/** A stored value, the subject whose key opens it, and the place it was sealed for. */
export interface FieldToOpen {
  subject: string;
  place: string;
  stored: Uint8Array;
}

export interface FieldCipher {
  /**
   * Each value as it is to be stored (keys made where missing); null where the subject's key is
   * erased, since nothing of an erased subject may be kept.
   */
  seal(fields: readonly FieldToSeal[]): Promise<(Buffer | null)[]>;
  /** Each stored value; undefined where its subject's key is erased. Throws SealBroken for one that does not open. */
  open<T = unknown>(fields: readonly FieldToOpen[]): Promise<(T | undefined)[]>;
}

/** The first byte of a sealed value (the envelope's format); JSON text never starts with it. */
const SEALED = 1;

const isSealed = (stored: Uint8Array) => stored[0] === SEALED;
const clear = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');
const parsed = (stored: Uint8Array) => JSON.parse(Buffer.from(stored).toString('utf8'));

/** Seals with `keys` when `sealNew`, else stores in the clear; opens both. */
export function fieldCipher(keys: KeyRing, options: { sealNew: boolean }): FieldCipher {
  // A read-model row is read (by the projector's next batch, by queries) far more often than
  // written, so what was sealed or opened lately is kept beside its ciphertext.
  const opened = openedCache();
  keys.onErasure(opened.clear);
  return {
    async seal(fields) {
      if (!options.sealNew) return fields.map((field) => clear(field.value));
      const keyEpoch = opened.epoch();
      const found = await keys.keys(
        fields.map((field) => field.subject),
        { create: true },
      );
      return fields.map(({ subject, place, value }) => {
        const key = found.get(subject);
        if (!key) return null;
        const plaintext = clear(value);
        const sealed = seal(key, plaintext, place, keys.nonce());
        opened.set(place, subject, sealed, plaintext, keyEpoch);
        return sealed;
      });
    },
    async open<T>(fields: readonly FieldToOpen[]) {
      const sealed = fields.filter((field) => isSealed(field.stored)).map((field) => field.subject);
      const keyEpoch = opened.epoch();
      const found = sealed.length > 0 ? await keys.keys(sealed) : new Map<string, Buffer | null>();
      return fields.map(({ subject, place, stored }): T | undefined => {
        if (!isSealed(stored)) return parsed(stored);
        const key = found.get(subject);
        if (key === undefined) throw new SealBroken(`${place} (no data key for ${subject})`);
        if (key === null) return undefined;
        let plaintext = opened.get(place, subject, stored);
        if (!plaintext) {
          plaintext = open(key, stored, place);
          opened.set(place, subject, stored, plaintext, keyEpoch);
        }
        return parsed(plaintext);
      });
    },
  };
}

/** Values stored and read in the clear: tables opened without keys. A sealed value does not open. */
export const clearFields: FieldCipher = {
  seal: async (fields) => fields.map((field) => clear(field.value)),
  open: async <T>(fields: readonly FieldToOpen[]) =>
    fields.map(({ place, stored }): T => {
      if (isSealed(stored)) throw new SealBroken(`${place} (opened without its keys)`);
      return parsed(stored);
    }),
};
