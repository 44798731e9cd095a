import { describe, expect, test } from 'vitest';
import { type CommitmentEvent, commandBodies, readEvent } from '../src/index.ts';
import {
  accepted,
  activated,
  activeBetweenAnaAndBen,
  ana,
  attach,
  ben,
  by,
  cancelled,
  claimed,
  cy,
  declined,
  dee,
  disputed,
  drafted,
  evidence,
  given,
  invited,
  proposed,
} from './spec.ts';

describe('creating and drafting', () => {
  test('any user creates a draft and becomes its creator', () => {
    const state = given()
      .when(by(ana, { action: 'create', type: 'personal', title: 'Lend Ben 200 EUR' }))
      .then((e) =>
        expect(e).toMatchObject({ type: 'CommitmentDrafted', data: { creatorId: ana, type: 'personal' } }),
      );
    expect(state.exists).toBe(true);
  });

  test('an unknown commitment type is invalid', () => {
    given()
      .when(by(ana, { action: 'create', type: 'no-such-type', title: 'x' }))
      .refuses(/unknown commitment type/, 'invalid');
  });

  test('the creator changes the terms of a draft', () => {
    const state = given(drafted())
      .when(by(ana, { action: 'update', title: 'Lend Ben 250 EUR' }))
      .then({ type: 'CommitmentUpdated', data: { changes: { title: 'Lend Ben 250 EUR' } } });
    expect(state.title).toBe('Lend Ben 250 EUR');
  });

  test('only the creator changes the terms', () => {
    given(drafted(), invited(ben))
      .when(by(ben, { action: 'update', title: 'x' }))
      .refuses(/only the creator/, 'forbidden');
  });

  test('someone who is no party cannot do anything to it', () => {
    given(drafted())
      .when(by(dee, { action: 'invite', userId: dee, role: 'participant' }))
      .refuses(/only the creator/, 'forbidden');
  });

  test('the creator invites participants and witnesses, once each', () => {
    given(drafted())
      .when(by(ana, { action: 'invite', userId: ben, role: 'participant' }))
      .then(invited(ben));
    given(drafted(), invited(ben))
      .when(by(ana, { action: 'invite', userId: ben, role: 'witness' }))
      .refuses(/already a party/);
  });

  test('the creator removes an invited party, but never themself', () => {
    given(drafted(), invited(ben))
      .when(by(ana, { action: 'remove-party', userId: ben }))
      .then({ type: 'PartyRemoved', data: { userId: ben } });
    given(drafted())
      .when(by(ana, { action: 'remove-party', userId: ana }))
      .refuses(/creator cannot be removed/);
  });

  test('a document attached again under the same name is its next version', () => {
    const sha = 'a'.repeat(64);
    const state = given(drafted())
      .when(
        by(ana, {
          action: 'attach-document',
          name: 'loan.pdf',
          mediaType: 'application/pdf',
          size: 10,
          sha256: sha,
        }),
      )
      .then((e) =>
        expect(e).toMatchObject({ type: 'DocumentAttached', data: { name: 'loan.pdf', version: 1 } }),
      );
    const first = state.documents[0];
    const again = given(drafted(), { type: 'DocumentAttached', data: first as never })
      .when(
        by(ana, {
          action: 'attach-document',
          name: 'loan.pdf',
          mediaType: 'application/pdf',
          size: 12,
          sha256: 'b'.repeat(64),
        }),
      )
      .then((e) => expect(e).toMatchObject({ data: { documentId: first?.documentId, version: 2 } }));
    expect(again.documents.map((d) => d.version)).toEqual([1, 2]);
  });
});

describe('proposing and answering', () => {
  test('proposing needs a participant', () => {
    given(drafted())
      .when(by(ana, { action: 'propose' }))
      .refuses('invite at least one participant before proposing');
  });

  test('a financial commitment needs an amount and a due date before it is proposed', () => {
    given(drafted({ type: 'financial' }), invited(ben))
      .when(by(ana, { action: 'propose' }))
      .refuses(/needs an amount/);
    given(drafted({ type: 'financial', amount: { minor: 20000, currency: 'EUR' } }), invited(ben))
      .when(by(ana, { action: 'propose' }))
      .refuses(/needs a due date/);
  });

  test('a type can require witnesses', () => {
    given(drafted({ type: 'witnessed' }), invited(ben))
      .when(by(ana, { action: 'propose' }))
      .refuses(/needs 1 witness/);
    given(drafted({ type: 'witnessed' }), invited(ben), invited(cy, 'witness'))
      .when(by(ana, { action: 'propose' }))
      .then(proposed);
  });

  test('a due date already past cannot be proposed', () => {
    given(drafted({ dueAt: '2020-01-01T00:00:00.000Z' }), invited(ben))
      .when(by(ana, { action: 'propose' }))
      .refuses(/due date has passed/);
  });

  test('only the creator proposes', () => {
    given(drafted(), invited(ben))
      .when(by(ben, { action: 'propose' }))
      .refuses(/only the creator/, 'forbidden');
  });

  test('a participant accepting the last open invitation activates the commitment', () => {
    const state = given(drafted(), invited(ben), proposed)
      .when(by(ben, { action: 'accept' }))
      .then(accepted(ben), activated);
    expect(state.status).toBe('active');
    expect(state.parties.every((p) => p.response === 'accepted')).toBe(true);
  });

  test('with another invitation open, accepting does not activate yet', () => {
    const state = given(drafted(), invited(ben), invited(cy, 'witness'), proposed)
      .when(by(ben, { action: 'accept' }))
      .then(accepted(ben));
    expect(state.status).toBe('proposed');
  });

  test('accepting twice is refused', () => {
    given(drafted(), invited(ben), invited(cy, 'witness'), proposed, accepted(ben))
      .when(by(ben, { action: 'accept' }))
      .refuses(/already accepted/);
  });

  test('a decline sends the commitment back to draft, and a new proposal asks everyone again', () => {
    const state = given(drafted(), invited(ben), invited(cy, 'witness'), proposed, accepted(cy))
      .when(by(ben, { action: 'decline', reason: 'too soon' }))
      .then({ type: 'InvitationDeclined', data: { userId: ben, reason: 'too soon' } });
    expect(state.status).toBe('draft');
    const again = given(
      drafted(),
      invited(ben),
      invited(cy, 'witness'),
      proposed,
      accepted(cy),
      declined(ben),
    )
      .when(by(ana, { action: 'propose' }))
      .then(proposed);
    expect(again.parties.filter((p) => p.role !== 'creator').map((p) => p.response)).toEqual([
      'invited',
      'invited',
    ]);
  });

  test('the creator cannot accept their own commitment, and a stranger cannot either', () => {
    given(drafted(), invited(ben), proposed)
      .when(by(ana, { action: 'accept' }))
      .refuses(/only an invited party/, 'forbidden');
    given(drafted(), invited(ben), proposed)
      .when(by(dee, { action: 'accept' }))
      .refuses(/only an invited party/, 'forbidden');
  });

  test('accepting a draft is refused with the state it is in', () => {
    given(drafted(), invited(ben))
      .when(by(ben, { action: 'accept' }))
      .refuses(/the commitment is a draft; this is only possible while it is proposed/);
  });

  test('the creator withdraws a proposal', () => {
    const state = given(drafted(), invited(ben), proposed)
      .when(by(ana, { action: 'withdraw' }))
      .then({ type: 'ProposalWithdrawn', data: {} });
    expect(state.status).toBe('draft');
  });

  test('terms change only before activation', () => {
    given(...activeBetweenAnaAndBen)
      .when(by(ana, { action: 'update', title: 'x' }))
      .refuses(/propose an amendment instead/);
    given(drafted(), invited(ben), proposed)
      .when(by(ana, { action: 'update', title: 'x' }))
      .refuses(/only possible while it is a draft/);
  });
});

describe('cancelling', () => {
  test('the creator cancels a draft or a proposal', () => {
    given(drafted())
      .when(by(ana, { action: 'cancel' }))
      .then(cancelled());
    given(drafted(), invited(ben), proposed)
      .when(by(ana, { action: 'cancel', reason: 'changed my mind' }))
      .then(cancelled('changed my mind'));
  });

  test('an active commitment is cancelled only when every principal party agrees', () => {
    given(...activeBetweenAnaAndBen)
      .when(by(ana, { action: 'cancel' }))
      .refuses(/request a cancellation/);
    const half = given(...activeBetweenAnaAndBen)
      .when(by(ana, { action: 'request-cancellation' }))
      .then({ type: 'CancellationRequested', data: { userId: ana } });
    expect(half.status).toBe('active');
    const done = given(...activeBetweenAnaAndBen, { type: 'CancellationRequested', data: { userId: ana } })
      .when(by(ben, { action: 'request-cancellation' }))
      .then({ type: 'CancellationRequested', data: { userId: ben } }, cancelled('all parties agreed'));
    expect(done.status).toBe('cancelled');
  });

  test('nothing happens to a cancelled commitment', () => {
    given(drafted(), cancelled())
      .when(by(ana, { action: 'propose' }))
      .refuses(/the commitment is cancelled/);
  });
});

describe('fulfilment, disputes and breaches', () => {
  test('a participant claims fulfilment and the counterparty confirms it', () => {
    const claimedState = given(...activeBetweenAnaAndBen).when(
      by(ben, { action: 'claim-fulfilment', note: 'paid back' }),
    );
    claimedState.then({ type: 'FulfilmentClaimed', data: { userId: ben, note: 'paid back' } });
    const state = given(...activeBetweenAnaAndBen, claimed(ben))
      .when(by(ana, { action: 'confirm-fulfilment' }))
      .then({ type: 'FulfilmentConfirmed', data: { userId: ana } });
    expect(state.status).toBe('fulfilled');
  });

  test('the claimant cannot confirm their own claim', () => {
    given(...activeBetweenAnaAndBen, claimed(ben))
      .when(by(ben, { action: 'confirm-fulfilment' }))
      .refuses(/another party/);
  });

  test('a witness can confirm fulfilment but cannot claim it', () => {
    const withWitness = [
      drafted(),
      invited(ben),
      invited(cy, 'witness'),
      proposed,
      accepted(ben),
      accepted(cy),
      activated,
    ];
    given(...withWitness)
      .when(by(cy, { action: 'claim-fulfilment' }))
      .refuses(/a witness cannot/, 'forbidden');
    given(...withWitness, claimed(ben))
      .when(by(cy, { action: 'confirm-fulfilment' }))
      .then({ type: 'FulfilmentConfirmed', data: { userId: cy } });
  });

  test('any party disputes an active or claimed commitment', () => {
    given(...activeBetweenAnaAndBen, claimed(ben))
      .when(by(ana, { action: 'dispute', reason: 'not paid' }))
      .then(disputed(ana));
    given(drafted())
      .when(by(ana, { action: 'dispute', reason: 'x' }))
      .refuses(/only possible while it is active or awaiting confirmation/);
  });

  test('a counterparty reports a breach, which opens a dispute', () => {
    const state = given(...activeBetweenAnaAndBen)
      .when(by(ana, { action: 'report-breach', reason: 'missed the payment' }))
      .then({ type: 'BreachReported', data: { userId: ana, reason: 'missed the payment' } });
    expect(state.status).toBe('disputed');
  });

  test('a witness resolves a dispute alone', () => {
    const withWitness = [
      drafted(),
      invited(ben),
      invited(cy, 'witness'),
      proposed,
      accepted(ben),
      accepted(cy),
      activated,
    ];
    const state = given(...withWitness, disputed(ana))
      .when(by(cy, { action: 'resolve', outcome: 'breached' }))
      .then({ type: 'DisputeResolved', data: { outcome: 'breached', decidedBy: 'witness' } });
    expect(state.status).toBe('breached');
  });

  test('without a witness, a dispute resolves when every principal party agrees on the outcome', () => {
    const first = given(...activeBetweenAnaAndBen, disputed(ana))
      .when(by(ana, { action: 'resolve', outcome: 'fulfilled' }))
      .then({ type: 'ResolutionVoted', data: { userId: ana, outcome: 'fulfilled' } });
    expect(first.status).toBe('disputed');
    given(...activeBetweenAnaAndBen, disputed(ana), {
      type: 'ResolutionVoted',
      data: { userId: ana, outcome: 'fulfilled' },
    })
      .when(by(ben, { action: 'resolve', outcome: 'breached' }))
      .then({ type: 'ResolutionVoted', data: { userId: ben, outcome: 'breached' } });
    const agreed = given(...activeBetweenAnaAndBen, disputed(ana), {
      type: 'ResolutionVoted',
      data: { userId: ana, outcome: 'fulfilled' },
    })
      .when(by(ben, { action: 'resolve', outcome: 'fulfilled' }))
      .then(
        { type: 'ResolutionVoted', data: { userId: ben, outcome: 'fulfilled' } },
        { type: 'DisputeResolved', data: { outcome: 'fulfilled', decidedBy: 'agreement' } },
      );
    expect(agreed.status).toBe('fulfilled');
  });
});

describe('deadlines', () => {
  const due = '2026-12-01T00:00:00.000Z';
  const activeWithDue = [drafted({ dueAt: due }), invited(ben), proposed, accepted(ben), activated];

  test('the system marks an active commitment past its due date overdue, once', () => {
    const state = given(...activeWithDue)
      .when(by(null, { action: 'miss-deadline' }, '2026-12-02T00:00:00.000Z'))
      .then({ type: 'DeadlineMissed', data: { dueAt: due } });
    expect(state.overdue).toBe(true);
    expect(state.status).toBe('active');
    given(...activeWithDue, { type: 'DeadlineMissed', data: { dueAt: due } })
      .when(by(null, { action: 'miss-deadline' }, '2026-12-03T00:00:00.000Z'))
      .refuses(/already marked overdue/);
  });

  test('not before the due date, and not by a user', () => {
    given(...activeWithDue)
      .when(by(null, { action: 'miss-deadline' }))
      .refuses(/has not passed/);
    given(...activeWithDue)
      .when(by(ana, { action: 'miss-deadline' }, '2026-12-02T00:00:00.000Z'))
      .refuses(/only the system/, 'invalid');
  });
});

describe('evidence after activation', () => {
  const receiptId = '00000000-0000-4000-8000-0000000000e1';

  test('a participant attaches proof of payment to an active commitment as evidence; the terms stay', () => {
    const state = given(...activeBetweenAnaAndBen)
      .when(by(ben, attach('receipt.pdf')))
      .then((e) =>
        expect(e).toMatchObject({
          type: 'EvidenceAttached',
          data: { name: 'receipt.pdf', version: 1, userId: ben },
        }),
      );
    expect(state.documents).toEqual([expect.objectContaining({ purpose: 'evidence', attachedBy: ben })]);
    expect(state).toMatchObject({ status: 'active', terms: 'Back by June', title: 'Lend Ben 200 EUR' });
  });

  test('any party who accepted, a witness too, attaches evidence to a claim or a dispute', () => {
    const witnessed = [
      drafted(),
      invited(ben),
      invited(cy, 'witness'),
      proposed,
      accepted(ben),
      accepted(cy),
    ];
    given(...witnessed, activated, claimed(ben))
      .when(by(cy, attach('photo.jpg')))
      .then((e) => expect(e).toMatchObject({ type: 'EvidenceAttached', data: { userId: cy } }));
    given(...activeBetweenAnaAndBen, disputed(ana))
      .when(by(ana, attach('bank-statement.pdf')))
      .then((e) => expect(e).toMatchObject({ type: 'EvidenceAttached', data: { userId: ana } }));
  });

  test('the same name from the same party is a next version; from another party, a document of its own', () => {
    const withReceipt = [...activeBetweenAnaAndBen, evidence(ben, receiptId, 'receipt.pdf')];
    given(...withReceipt)
      .when(by(ben, attach('receipt.pdf', 'b'.repeat(64))))
      .then((e) => expect(e).toMatchObject({ data: { documentId: receiptId, version: 2, userId: ben } }));
    const state = given(...withReceipt)
      .when(by(ana, attach('receipt.pdf')))
      .then((e) => expect(e).toMatchObject({ data: { version: 1, userId: ana } }));
    expect(new Set(state.documents.map((d) => d.documentId)).size).toBe(2);
  });

  test('evidence named like a document of the terms does not replace it', () => {
    const termsId = '00000000-0000-4000-8000-0000000000d1';
    const terms: CommitmentEvent = {
      type: 'DocumentAttached',
      data: {
        documentId: termsId,
        name: 'loan.pdf',
        mediaType: 'application/pdf',
        size: 1,
        sha256: 'c'.repeat(64),
        version: 1,
      },
    };
    const [draft, ...rest] = activeBetweenAnaAndBen;
    const state = given(draft as CommitmentEvent, terms, ...rest)
      .when(by(ana, attach('loan.pdf')))
      .then((e) => expect(e).toMatchObject({ type: 'EvidenceAttached', data: { version: 1 } }));
    const [kept, added] = state.documents;
    expect(kept).toMatchObject({
      documentId: termsId,
      purpose: 'terms',
      attachedBy: ana,
      sha256: 'c'.repeat(64),
    });
    expect(added).toMatchObject({ purpose: 'evidence', attachedBy: ana });
    expect(added?.documentId).not.toBe(termsId);
  });

  test('in a draft only the creator attaches documents, and they are terms', () => {
    given(drafted(), invited(ben))
      .when(by(ben, attach('receipt.pdf')))
      .refuses(/only the creator can attach documents/, 'forbidden');
    given(drafted())
      .when(by(ana, attach('loan.pdf')))
      .then((e) => expect(e.type).toBe('DocumentAttached'));
  });

  test('no evidence while proposed or once settled, none from a stranger, and none is removed', () => {
    given(drafted(), invited(ben), proposed)
      .when(by(ben, attach('receipt.pdf')))
      .refuses(/the commitment is proposed; this is only possible while it is a draft or active/);
    given(...activeBetweenAnaAndBen, claimed(ben), { type: 'FulfilmentConfirmed', data: { userId: ana } })
      .when(by(ben, attach('receipt.pdf')))
      .refuses(/the commitment is fulfilled/);
    given(...activeBetweenAnaAndBen)
      .when(by(dee, attach('receipt.pdf')))
      .refuses(/only a party/, 'forbidden');
    given(...activeBetweenAnaAndBen, evidence(ben, receiptId, 'receipt.pdf'))
      .when(by(ana, { action: 'remove-document', documentId: receiptId }))
      .refuses(/only possible while it is a draft/);
  });
});

describe('amendments after activation', () => {
  test('an amendment applies when every principal party accepts it', () => {
    const proposedAmendment = given(...activeBetweenAnaAndBen)
      .when(by(ana, { action: 'propose-amendment', changes: { terms: 'Back by July' } }))
      .then((e) =>
        expect(e).toMatchObject({
          type: 'AmendmentProposed',
          data: { userId: ana, changes: { terms: 'Back by July' } },
        }),
      );
    expect(proposedAmendment.terms).toBe('Back by June');
    const amendmentId = proposedAmendment.amendment?.amendmentId as string;
    const applied = given(...activeBetweenAnaAndBen, {
      type: 'AmendmentProposed',
      data: { amendmentId, userId: ana, changes: { terms: 'Back by July' } },
    })
      .when(by(ben, { action: 'accept-amendment', amendmentId }))
      .then(
        { type: 'AmendmentAccepted', data: { amendmentId, userId: ben } },
        { type: 'AmendmentApplied', data: { amendmentId } },
      );
    expect(applied.terms).toBe('Back by July');
    expect(applied.amendment).toBeNull();
  });

  test('a declined amendment changes nothing', () => {
    const amendmentId = '00000000-0000-4000-8000-0000000000aa';
    const state = given(...activeBetweenAnaAndBen, {
      type: 'AmendmentProposed',
      data: { amendmentId, userId: ana, changes: { title: 'x' } },
    })
      .when(by(ben, { action: 'decline-amendment', amendmentId }))
      .then({ type: 'AmendmentDeclined', data: { amendmentId, userId: ben } });
    expect(state.title).toBe('Lend Ben 200 EUR');
  });

  test('one amendment at a time, and only on an active commitment', () => {
    const amendmentId = '00000000-0000-4000-8000-0000000000aa';
    given(...activeBetweenAnaAndBen, {
      type: 'AmendmentProposed',
      data: { amendmentId, userId: ana, changes: { title: 'x' } },
    })
      .when(by(ben, { action: 'propose-amendment', changes: { title: 'y' } }))
      .refuses(/another amendment/);
    given(drafted(), invited(ben))
      .when(by(ana, { action: 'propose-amendment', changes: { title: 'y' } }))
      .refuses(/only possible while it is active/);
  });
});

describe('event schemas', () => {
  test('an old CommitmentDrafted (schema 1, as in the ledger vectors) is upcast on read', () => {
    const event = readEvent({
      type: 'CommitmentDrafted',
      schema: 1,
      actor: ana,
      data: {
        title: 'Lend Ana 200 EUR — back by June',
        typeKey: 'financial',
        amount: { minor: 20000, currency: 'EUR' },
        dueAt: '2027-06-01T00:00:00.000Z',
        parties: [],
      },
    });
    expect(event).toEqual({
      type: 'CommitmentDrafted',
      data: {
        type: 'financial',
        creatorId: ana,
        title: 'Lend Ana 200 EUR — back by June',
        description: '',
        terms: '',
        amount: { minor: 20000, currency: 'EUR' },
        dueAt: '2027-06-01T00:00:00.000Z',
      },
    });
  });

  test('command bodies name the invalid field', () => {
    const result = commandBodies.create.safeParse({
      type: 'personal',
      title: '',
      amount: { minor: 1.5, currency: 'eur' },
    });
    expect(result.success).toBe(false);
    const paths = result.error?.issues.map((i) => i.path.join('.')).sort();
    expect(paths).toEqual(['amount.currency', 'amount.minor', 'title']);
  });
});
