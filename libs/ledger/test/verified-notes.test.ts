import { expect, test } from 'vitest';
import { verifiedNotes } from '../src/verified-notes.ts';

const root = new Uint8Array(32).fill(7);
const otherRoot = new Uint8Array(32).fill(8);

test('a note is known at the size and over the root it was verified with, and only there', () => {
  const notes = verifiedNotes();
  notes.add(5, 'origin\n5\nroot\n\n— sig\n', root);
  expect(notes.has(5, 'origin\n5\nroot\n\n— sig\n', root)).toBe(true);
  expect(notes.has(5, 'origin\n5\nroot\n\n— sih\n', root)).toBe(false);
  expect(notes.has(5, 'origin\n5\nroot\n\n— sig\n', otherRoot)).toBe(false);
  expect(notes.has(6, 'origin\n5\nroot\n\n— sig\n', root)).toBe(false);
});

test('once full, the first notes stay known and later ones are not kept', () => {
  const notes = verifiedNotes(3);
  for (let size = 1; size <= 5; size++) notes.add(size, `note ${size}`, root);
  expect([1, 2, 3, 4, 5].map((size) => notes.has(size, `note ${size}`, root))).toEqual([
    true,
    true,
    true,
    false,
    false,
  ]);
});
