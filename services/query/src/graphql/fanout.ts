// From the projector's NOTIFY to subscribers: when the read models move on, find the commitments
// that changed and publish each to its topic and to each party's topic. Whether a subscriber may
// see it is decided per subscriber (filter and read under row-level security), never here.
// Notifications follow their own projection ('notifications:<index>'): each subscriber with news
// reads its notifications since the last one it was sent, as itself.
import { NOTIFICATIONS_PROJECTION, named } from '@connect/db';
import type pg from 'pg';
import type { NotificationView } from '../notifications/queries.ts';
import type { ProjectedIndex } from '../projected-index.ts';
import type { Connection, Connections } from './connections.ts';

export interface ChangedCommitment {
  id: string;
  index: number;
  parties: string[];
}

export const commitmentTopic = (id: string) => `commitment:${id}`;
export const userTopic = (userId: string) => `user:${userId}`;

/** Most commitments announced per advance (a catch-up after downtime is not a live change). */
const MAX_ANNOUNCED = 5000;

export function announceChanges(
  deps: { pool: pg.Pool; projectedIndex: ProjectedIndex },
  topics: Pick<ChangeTopics, 'publish' | 'listened'>,
  onError: (error: unknown) => void,
): () => void {
  let chain = Promise.resolve();
  return deps.projectedIndex.onAdvance((from, to) => {
    // One advance at a time, in order, so subscribers see changes in ledger order.
    chain = chain.then(() => announce(from, to)).catch(onError);
  });

  async function announce(from: number, to: number): Promise<void> {
    // No subscription here (a process that only takes commands): nobody to tell.
    if (!topics.listened()) return;
    const { rows } = await deps.pool.query<{ id: string; index: number; parties: string[] }>(
      named({
        // Named: run at every advance of the read models, it is planned once per connection.
        name: 'fanout-changed-commitments',
        text: `select h.commitment_id as id, max(h.index) as index, h.party_ids as parties
        from commitment_history h
        where h.index > $1 and h.index <= $2
        group by h.commitment_id, h.party_ids
        order by max(h.index)
        limit $3`,
        values: [from, to, MAX_ANNOUNCED],
      }),
    );
    for (const change of rows) {
      topics.publish(commitmentTopic(change.id), change);
      for (const userId of change.parties) topics.publish(userTopic(userId), change);
    }
  }
}

export interface ChangeTopics {
  publish(topic: string, change: ChangedCommitment): void;
  /** Whether any subscription listens to a topic. */
  listened(): boolean;
  /** The changes published to `topic` from now on, until the iterator returns. */
  subscribe(topic: string, connection: Connection): AsyncIterableIterator<ChangedCommitment>;
}

/**
 * Topics in this process. A subscription's waiting changes hold each commitment once: a newer
 * change replaces the waiting one (what is sent is read when it is sent, so it is the same), which
 * bounds them by the commitments visible to it; and their count per connection is bounded too.
 */
export function changeTopics(connections: Pick<Connections, 'queuedOne'>): ChangeTopics {
  const listeners = keyedListeners<ChangedCommitment>();
  return {
    publish(topic, change) {
      listeners.emit(topic, change);
    },
    listened: () => listeners.size() > 0,
    subscribe(topic, connection) {
      const waiting = new Map<string, ChangedCommitment>();
      let wake: (() => void) | undefined;
      let done = false;
      const listener = (change: ChangedCommitment) => {
        if (connection.socket.readyState !== connection.socket.OPEN) return;
        if (!waiting.delete(change.id)) connection.queued++;
        waiting.set(change.id, change);
        connections.queuedOne(connection);
        wake?.();
      };
      const unlisten = listeners.add(topic, listener);
      const end = () => {
        if (done) return;
        done = true;
        unlisten();
        connection.queued -= waiting.size;
        waiting.clear();
        wake?.();
      };
      const iterator: AsyncIterableIterator<ChangedCommitment> = {
        async next() {
          while (!done && waiting.size === 0) await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          const [first] = waiting;
          if (done || !first) return { done: true, value: undefined };
          waiting.delete(first[0]);
          connection.queued--;
          return { done: false, value: first[1] };
        },
        async return() {
          end();
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return iterator;
        },
      };
      return iterator;
    },
  };
}

/** A recipient has `count` new notifications from ledger entries in (from, index]. */
export interface NotificationNews {
  from: number;
  index: number;
  count: number;
}

/** Where a subscriber's sent notifications end: an index, or a notification of it (by id). */
export interface NotificationPosition {
  ledgerIndex: number;
  id?: string;
}

/** The caller's notifications after `after` up to `upTo`, oldest first, read as the caller. */
export type ReadNotifications = (
  after: NotificationPosition,
  upTo: number,
  limit: number,
) => Promise<NotificationView[]>;

/** Most notifications read for a subscriber at once. */
const NOTIFICATION_PAGE = 50;

export function announceNotifications(
  deps: { pool: pg.Pool; projectedIndex: ProjectedIndex },
  feed: Pick<NotificationFeed, 'recipients' | 'publish'>,
  onError: (error: unknown) => void,
): () => void {
  let chain = Promise.resolve();
  return deps.projectedIndex.onProjectionAdvance(NOTIFICATIONS_PROJECTION, (from, to) => {
    chain = chain.then(() => announce(from, to)).catch(onError);
  });

  // Only the recipients someone listens for here, and only a count: what is sent is read by each
  // subscriber as itself.
  async function announce(from: number, to: number): Promise<void> {
    const recipients = feed.recipients();
    if (recipients.length === 0) return;
    const { rows } = await deps.pool.query<{ recipient_id: string; n: string }>(
      `select recipient_id, count(*) as n from notifications
        where recipient_id = any($1::text[]) and ledger_index > $2 and ledger_index <= $3
        group by recipient_id`,
      [recipients, from, to],
    );
    for (const row of rows) feed.publish(row.recipient_id, { from, index: to, count: Number(row.n) });
  }
}

export interface NotificationFeed {
  /** Who has a subscription in this process. */
  recipients(): string[];
  publish(userId: string, news: NotificationNews): void;
  /** The notifications `read` finds after those announced from now on, oldest first, until the iterator returns. */
  subscribe(
    userId: string,
    connection: Connection,
    read: ReadNotifications,
  ): AsyncIterableIterator<NotificationView>;
}

/**
 * Notification subscriptions in this process. What waits for a subscriber is a position (the last
 * notification sent) and how far the notifications announced reach, not the notifications: they
 * are read a page at a time as they are sent. The count announced and not yet sent is counted
 * against the connection like waiting changes, so a subscriber that stops reading is closed.
 */
export function notificationFeed(
  connections: Pick<Connections, 'queuedOne'>,
  position: () => number,
): NotificationFeed {
  const listeners = keyedListeners<NotificationNews>();
  return {
    recipients: () => listeners.keys(),
    publish(userId, news) {
      listeners.emit(userId, news);
    },
    subscribe(userId, connection, read) {
      const known = position();
      // Everything up to caughtUp has been sent; after is where the next read starts. Before the
      // notifier's position is known, the first news says where "from now on" begins.
      let caughtUp = known;
      let after: NotificationPosition | undefined = known >= 0 ? { ledgerIndex: known } : undefined;
      let target = known;
      let pending = 0;
      let buffer: NotificationView[] = [];
      let reaches: number | undefined;
      let wake: (() => void) | undefined;
      let done = false;

      const release = (n: number) => {
        const count = Math.min(n, pending);
        pending -= count;
        connection.queued -= count;
      };
      const listener = (news: NotificationNews) => {
        if (done || connection.socket.readyState !== connection.socket.OPEN) return;
        if (after === undefined) {
          after = { ledgerIndex: news.from };
          caughtUp = news.from;
        }
        target = Math.max(target, news.index);
        pending += news.count;
        connection.queued += news.count;
        connections.queuedOne(connection);
        wake?.();
      };
      const unlisten = listeners.add(userId, listener);
      const end = () => {
        if (done) return;
        done = true;
        unlisten();
        release(pending);
        buffer = [];
        wake?.();
      };

      const iterator: AsyncIterableIterator<NotificationView> = {
        async next() {
          while (!done) {
            const item = buffer.shift();
            if (item) {
              after = { ledgerIndex: item.ledgerIndex, id: item.id };
              release(1);
              return { done: false, value: item };
            }
            if (reaches !== undefined) {
              caughtUp = reaches;
              after = { ledgerIndex: reaches };
              reaches = undefined;
              if (target === caughtUp) release(pending);
            }
            if (after !== undefined && target > caughtUp) {
              const upTo = target;
              buffer = await read(after, upTo, NOTIFICATION_PAGE);
              if (buffer.length < NOTIFICATION_PAGE) reaches = upTo;
              continue;
            }
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
          }
          return { done: true, value: undefined };
        },
        async return() {
          end();
          return { done: true, value: undefined };
        },
        [Symbol.asyncIterator]() {
          return iterator;
        },
      };
      return iterator;
    },
  };
}

/** Listeners by key (a topic, a user): add returns the removal; a key with none left is forgotten. */
function keyedListeners<T>() {
  const byKey = new Map<string, Set<(value: T) => void>>();
  return {
    add(key: string, listener: (value: T) => void): () => void {
      const set = byKey.get(key) ?? new Set();
      byKey.set(key, set.add(listener));
      return () => {
        set.delete(listener);
        if (set.size === 0 && byKey.get(key) === set) byKey.delete(key);
      };
    },
    emit(key: string, value: T): void {
      for (const listener of byKey.get(key) ?? []) listener(value);
    },
    keys: () => [...byKey.keys()],
    size: () => byKey.size,
  };
}
