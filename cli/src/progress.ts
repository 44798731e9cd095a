/** One line of progress: a bar, done/total, the rate and the time left. */
export function progressBar(done: number, total: number, startedAt: number, unit = 'entries'): string {
  const width = 30;
  const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width));
  const seconds = (performance.now() - startedAt) / 1000;
  const rate = seconds > 0 ? done / seconds : 0;
  const eta = rate > 0 ? Math.max(0, total - done) / rate : 0;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${unit}, ${Math.round(rate)}/s, ETA ${eta.toFixed(0)} s`;
}
