// Where the sealed values of the commitment read models live: the associated data that binds each
// to its row, spelled once for the projector that seals and the query service that opens. The
// key is the commitment stream's (streamKeySubject of its stream).

/** A commitment's sealed domain state (commitments.sealed). */
export const commitmentRowPlace = (id: string) => `commitments:${id}`;

/** The sealed data of the event a history row shows (commitment_history.sealed). */
export const historyRowPlace = (index: number) => `commitment_history:${index}`;
