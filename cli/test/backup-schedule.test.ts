import { type ConfigError, loadConfig } from '@connect/db';
import { describe, expect, test } from 'vitest';
import { walSegments } from '../src/backup/base-backup.ts';
import { parseRestoreTarget } from '../src/backup/restore-target.ts';
import { backupFolderName, backupsToRemove, nextBackupTimes } from '../src/backup/schedule.ts';
import { firstWalSegment, walBefore } from '../src/backup/wal-prune.ts';

const at = (iso: string) => backupFolderName(new Date(iso));

describe('keeping the last N backups', () => {
  const names = [
    at('2026-11-01T03:00:00Z'),
    at('2026-11-02T03:00:00Z'),
    at('2026-11-03T03:00:00Z'),
    at('2026-11-04T03:00:00Z'),
  ];

  test('folder names sort as the backups were taken', () => {
    expect(at('2026-11-04T03:00:00.5Z')).toBe('2026-11-04T03-00-00-500Z');
    expect([...names].reverse().sort()).toEqual(names);
  });

  test('the oldest go once more than N complete backups exist', () => {
    expect(backupsToRemove(names, 2, () => true)).toEqual(names.slice(0, 2));
    expect(backupsToRemove(names, 7, () => true)).toEqual([]);
    expect(backupsToRemove(names, 1, () => true)).toEqual(names.slice(0, 3));
  });

  test('an incomplete backup is never counted as kept, and goes once an older one would', () => {
    const complete = (name: string) => name !== names[3] && name !== names[1];
    // Keep 2 complete: names[2] and names[0]; the failed names[1] between them goes, the newest
    // (incomplete, maybe still being written) stays.
    expect(backupsToRemove(names, 2, complete)).toEqual([names[1]]);
    expect(backupsToRemove(names, 1, complete)).toEqual([names[0], names[1]]);
  });

  test('folders that are not backups are left alone', () => {
    expect(backupsToRemove(['notes', `${names[0]}.partial`, ...names], 1, () => true)).toEqual(
      names.slice(0, 3),
    );
  });

  test('nothing is removed before a backup is complete', () => {
    expect(backupsToRemove(names, 3, () => false)).toEqual([]);
  });
});

describe('pruning the WAL archive', () => {
  const archived = [
    '000000010000000000000001',
    '000000010000000000000002',
    '000000010000000000000002.00000028.backup',
    '00000001000000000000000F',
    '000000020000000000000010.partial',
    '00000002.history',
    '000000020000000100000000',
    '.000000020000000100000001.partial',
    'documents',
  ];

  test('what lies before the oldest needed segment goes, by position on any timeline', () => {
    expect(walBefore(archived, '000000020000000000000010')).toEqual([
      '000000010000000000000001',
      '000000010000000000000002',
      '000000010000000000000002.00000028.backup',
      '00000001000000000000000F',
    ]);
  });

  test('the needed segment, later ones, histories, drafts being archived and other files stay', () => {
    expect(walBefore(archived, '000000010000000000000001')).toEqual([]);
    const kept = archived.filter((name) => !walBefore(archived, '000000020000000100000000').includes(name));
    expect(kept).toEqual([
      '00000002.history',
      '000000020000000100000000',
      '.000000020000000100000001.partial',
      'documents',
    ]);
  });

  test('a backup needs the WAL from the first segment it copied', () => {
    const file = (p: string) => ({ path: p, size: 1, sha256: '' });
    expect(
      firstWalSegment({
        files: [
          file('data/postgres/data/PG_VERSION'),
          file('data/postgres/data/pg_wal/000000010000000000000004'),
          file('data/postgres/data/pg_wal/000000010000000000000003'),
          file('data/postgres/data/pg_wal/00000001.history'),
        ],
      }),
    ).toBe('000000010000000000000003');
    expect(firstWalSegment({ files: [file('data/postgres/data/PG_VERSION')] })).toBeUndefined();
  });
});

test('the schedule is cron syntax: daily at 03:00, every 15 minutes', () => {
  const from = new Date('2026-11-30T02:59:00Z');
  expect(nextBackupTimes('0 3 * * *', from, 2).map((d) => d.toISOString())).toEqual([
    '2026-11-30T03:00:00.000Z',
    '2026-12-01T03:00:00.000Z',
  ]);
  expect(nextBackupTimes('*/15 * * * *', from, 3).map((d) => d.toISOString())).toEqual([
    '2026-11-30T03:00:00.000Z',
    '2026-11-30T03:15:00.000Z',
    '2026-11-30T03:30:00.000Z',
  ]);
});

test('backup settings: a bad schedule, or a schedule without a folder, stops start-up naming the variable', () => {
  const load = (env: Record<string, string>) => {
    try {
      return loadConfig(env);
    } catch (error) {
      return (error as ConfigError).issues.map((issue) => issue.variable);
    }
  };
  expect(load({ CONNECT_BACKUP_SCHEDULE: 'every day', CONNECT_BACKUP_DIR: '/b' })).toEqual([
    'CONNECT_BACKUP_SCHEDULE',
  ]);
  expect(load({ CONNECT_BACKUP_SCHEDULE: '0 3 * * *' })).toEqual(['CONNECT_BACKUP_DIR']);
  expect(
    load({ CONNECT_BACKUP_KEEP: '0', CONNECT_BACKUP_DIR: '/b', CONNECT_BACKUP_SCHEDULE: '@daily' }),
  ).toEqual(['CONNECT_BACKUP_KEEP']);
  expect(load({ CONNECT_WAL_ARCHIVE: "/it's" })).toEqual(['CONNECT_WAL_ARCHIVE']);
  const config = loadConfig({
    CONNECT_BACKUP_SCHEDULE: '0 3 * * *',
    CONNECT_BACKUP_DIR: '/b',
    CONNECT_WAL_ARCHIVE: '/w',
  });
  expect(config.backups).toEqual({ schedule: '0 3 * * *', dir: '/b', keep: 7 });
  expect(config.walArchive).toBe('/w');
  expect(loadConfig({}).backups).toBeUndefined();
});

test('a restore target is latest, a ledger index or an ISO time with its offset', () => {
  expect(parseRestoreTarget('latest')).toEqual({ kind: 'latest' });
  expect(parseRestoreTarget('42')).toEqual({ kind: 'index', index: 42 });
  expect(parseRestoreTarget('2026-11-30T03:00:00+01:00')).toEqual({
    kind: 'time',
    time: new Date('2026-11-30T02:00:00Z'),
  });
  expect(parseRestoreTarget('2026-11-30T03:00:00')).toBeUndefined();
  expect(parseRestoreTarget('yesterday')).toBeUndefined();
  expect(parseRestoreTarget('-1')).toBeUndefined();
});

test('the WAL a backup needs: every segment from its start to its stop', () => {
  expect(walSegments('0000000100000000000000FE', '000000010000000100000001', 16 * 1024 * 1024)).toEqual([
    '0000000100000000000000FE',
    '0000000100000000000000FF',
    '000000010000000100000000',
    '000000010000000100000001',
  ]);
});
