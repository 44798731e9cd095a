// What an import did with each source row: imported, skipped or failed, each with its reasons.
// Reasons name rows and fields, never a password or a hash.

export type RowKind = 'user' | 'type' | 'commitment';
export type Outcome = 'imported' | 'skipped' | 'failed';

export interface RowReport {
  kind: RowKind;
  sourceId: string;
  outcome: Outcome;
  reasons: string[];
  /** Imported by an earlier run: this one left it alone. */
  earlier?: boolean;
}

export interface ImportReport {
  startedAt: string;
  finishedAt: string;
  /** By kind and outcome, rows an earlier run dealt with included; `earlier` counts those. */
  counts: Record<RowKind, Record<Outcome | 'earlier', number>>;
  rows: RowReport[];
}

export function summarize(rows: RowReport[], startedAt: Date, finishedAt: Date): ImportReport {
  const zero = () => ({ imported: 0, skipped: 0, failed: 0, earlier: 0 });
  const counts: ImportReport['counts'] = { user: zero(), type: zero(), commitment: zero() };
  for (const row of rows) {
    counts[row.kind][row.outcome]++;
    if (row.earlier) counts[row.kind].earlier++;
  }
  return { startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString(), counts, rows };
}

/** The report as a person reads it: counts, then every row that was skipped, failed or imported with remarks. */
export function formatReport(report: ImportReport): string {
  const lines = (['user', 'type', 'commitment'] as const).map((kind) => {
    const c = report.counts[kind];
    const earlier = c.earlier > 0 ? ` (${c.earlier} of them by an earlier run)` : '';
    return `${kind}s: ${c.imported} imported, ${c.skipped} skipped, ${c.failed} failed${earlier}`;
  });
  for (const row of report.rows) {
    if (row.reasons.length === 0) continue;
    lines.push(`  ${row.outcome} ${row.kind} ${row.sourceId}: ${row.reasons.join('; ')}`);
  }
  return lines.join('\n');
}
