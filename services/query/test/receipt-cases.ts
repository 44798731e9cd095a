// A commitment with a few events, its receipt as served, and the receipts every verifier must
// refuse (LEDGER.md "Verifying a commitment", steps 4 and 5), shared by the tests of each verifier.
import {
  openStreamHead,
  type ReceiptBundle,
  type SigningKey,
  signingKeyFromSeed,
  signStreamHead,
} from '@connect/crypto';
import type { Stack } from '../../../test/support/stack.ts';
import { type Account, signUp } from '../../command/test/support.ts';

export interface Served {
  id: string;
  ana: Account;
  ben: Account;
  receipt: ReceiptBundle & { state: Record<string, unknown> };
}

/** Ana lends Ben 1,250.00 EUR: drafted, Ben invited, proposed, accepted, activated (five events). */
export async function servedReceipt(s: Stack): Promise<Served> {
  const ana = await signUp(s.app, 'Ana');
  const ben = await signUp(s.app, 'Ben');
  let last = 0;
  const post = async (who: Account, url: string, payload: object = {}) => {
    const response = await s.app.inject({ method: 'POST', url, payload, headers: who.auth });
    if (response.statusCode >= 300) throw new Error(`${url}: ${response.body}`);
    const receipt = response.json();
    last = Math.max(last, receipt.events.at(-1).index);
    return receipt;
  };
  const { commitmentId: id } = await post(ana, '/v1/commitments', {
    type: 'financial',
    title: 'Loan for the van',
    amount: { minor: 125000, currency: 'EUR' },
    dueAt: '2030-01-01T00:00:00.000Z',
  });
  await post(ana, `/v1/commitments/${id}/invite`, { userId: ben.userId, role: 'participant' });
  await post(ana, `/v1/commitments/${id}/propose`);
  await post(ben, `/v1/commitments/${id}/accept`);
  const response = await s.app.inject({
    method: 'GET',
    url: `/v1/commitments/${id}/receipt`,
    headers: { ...ana.auth, 'connect-min-index': String(last) },
  });
  if (response.statusCode !== 200) throw new Error(`receipt: ${response.body}`);
  return { id, ana, ben, receipt: response.json() };
}

/** The check of libs/crypto's verifyReceipt each refused receipt fails. */
export const CHECKS = {
  cutOff: 'stream head’s latest entry is the receipt’s last (version and index)',
  editedState: 'state is what the entries replay to',
  otherStream: 'stream head names the receipt’s stream',
  otherTreeSize: 'stream head is for the checkpoint’s tree size and root',
  otherKey: 'stream head is signed by the key',
} as const;

export type RefusedCase = keyof typeof CHECKS;

/** Each receipt to refuse, made from a good one with the ledger's key (or, for otherKey, another). */
export function refusedReceipts(receipt: ReceiptBundle, key: SigningKey): Record<RefusedCase, ReceiptBundle> {
  const head = openStreamHead(receipt.streamHead, [key]);
  const copy = (change: (bundle: ReceiptBundle & { state: Record<string, unknown> }) => void) => {
    const bundle = structuredClone(receipt) as ReceiptBundle & { state: Record<string, unknown> };
    change(bundle);
    return bundle;
  };
  const stranger = signingKeyFromSeed(key.name, new Uint8Array(32).fill(99));
  return {
    cutOff: copy((r) => {
      r.entries.splice(-3);
    }),
    editedState: copy((r) => {
      r.state.amount = { minor: 12500, currency: 'EUR' };
    }),
    otherStream: copy((r) => {
      r.streamHead = signStreamHead(
        { ...head, stream: 'commitment-00000000-0000-4000-8000-000000000000' },
        key,
      );
    }),
    otherTreeSize: copy((r) => {
      r.streamHead = signStreamHead({ ...head, treeSize: head.treeSize + 1 }, key);
    }),
    otherKey: copy((r) => {
      r.streamHead = signStreamHead(head, stranger);
    }),
  };
}
