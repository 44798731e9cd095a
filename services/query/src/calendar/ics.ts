// iCalendar (RFC 5545) text for commitments: one VEVENT per commitment with a due date.
// Written here rather than with a generator library: the subset needed (TEXT escaping, line
// folding, UTC times, VALARM) is small, and the output is byte-for-byte deterministic, which the
// feed's ETag (a hash of the body) relies on.
import type { CommitmentView, PartyView } from '../commitments/queries.ts';

export interface CalendarOptions {
  /** The ledger origin: event UIDs are `<commitmentId>@<origin>`, stable across feeds and downloads. */
  origin: string;
  /** The web app's base URL; each event links to `${appUrl}/commitments/<id>`. */
  appUrl: string;
  /** Seconds before the due date to remind at, one VALARM each. */
  reminderOffsets: readonly number[];
  /** The user the calendar is for: the parties listed are the others. */
  viewer: string;
  /** X-WR-CALNAME, the name a calendar app shows for a subscribed feed. */
  name?: string;
}

const CRLF = '\r\n';
const FINISHED = new Set(['cancelled', 'fulfilled', 'breached']);

// biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;

/** TEXT value escaping (RFC 5545 §3.3.11); other control characters are not allowed in TEXT. */
export function escapeText(value: string): string {
  return value
    .replace(/\r\n?/g, '\n')
    .replace(/[\\;,]/g, (c) => `\\${c}`)
    .replace(/\n/g, '\\n')
    .replace(CONTROL, '');
}

/** A parameter value, always quoted; DQUOTE and control characters cannot appear in one (§3.2). */
function paramValue(value: string): string {
  return `"${value.replace(CONTROL, '').replace(/[\t\n"]/g, '')}"`;
}

/** Folds a content line into lines of at most 75 octets, never splitting a UTF-8 character (§3.1). */
export function foldLine(line: string): string {
  if (Buffer.byteLength(line) <= 75) return line;
  const lines: string[] = [];
  let current = '';
  let octets = 0;
  for (const char of line) {
    const size = Buffer.byteLength(char);
    // The first line holds 75 octets; each continuation line starts with a space, then 74.
    if (octets + size > 75) {
      lines.push(current);
      current = ' ';
      octets = 1;
    }
    current += char;
    octets += size;
  }
  lines.push(current);
  return lines.join(CRLF);
}

/** UTC DATE-TIME form, e.g. 20310601T120000Z (§3.3.5). */
export function utcDateTime(iso: string): string {
  return new Date(iso)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** A DURATION (§3.3.6) of whole seconds, in days when it is whole days: 604800 → P7D, 5400 → PT1H30M. */
export function duration(seconds: number): string {
  if (seconds % 86400 === 0) return `P${seconds / 86400}D`;
  const days = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const time = `${h ? `${h}H` : ''}${m ? `${m}M` : ''}${s ? `${s}S` : ''}`;
  return `P${days ? `${days}D` : ''}T${time}`;
}

/** How a reminder reads: "in 7 days", "in 1 hour". */
function inWords(seconds: number): string {
  const [amount, unit] =
    seconds % 86400 === 0
      ? [seconds / 86400, 'day']
      : seconds % 3600 === 0
        ? [seconds / 3600, 'hour']
        : [Math.round(seconds / 60), 'minute'];
  return `in ${amount} ${unit}${amount === 1 ? '' : 's'}`;
}

function eventStatus(status: string): string {
  if (status === 'cancelled') return 'CANCELLED';
  if (status === 'draft' || status === 'proposed') return 'TENTATIVE';
  return 'CONFIRMED';
}

const ROLE: Record<string, string> = {
  creator: 'CHAIR',
  participant: 'REQ-PARTICIPANT',
  witness: 'OPT-PARTICIPANT',
};
const PARTSTAT: Record<string, string> = {
  invited: 'NEEDS-ACTION',
  accepted: 'ACCEPTED',
  declined: 'DECLINED',
};

const nameOf = (party: PartyView) => party.displayName ?? 'someone';

function attendee(party: PartyView): string {
  return `ATTENDEE;CN=${paramValue(nameOf(party))};ROLE=${ROLE[party.role] ?? 'REQ-PARTICIPANT'};PARTSTAT=${
    PARTSTAT[party.response] ?? 'NEEDS-ACTION'
  }:urn:uuid:${party.userId}`;
}

function eventLines(commitment: CommitmentView & { dueAt: string }, options: CalendarOptions): string[] {
  const link = `${options.appUrl}/commitments/${commitment.id}`;
  const others = commitment.parties.filter((party) => party.userId !== options.viewer);
  const description = [
    commitment.description,
    others.length ? `With ${others.map((party) => `${nameOf(party)} (${party.role})`).join(', ')}` : '',
    `Status: ${commitment.status}${commitment.overdue ? ', overdue' : ''}`,
    link,
  ]
    .filter((part) => part !== '')
    .join('\n');
  const lines = [
    'BEGIN:VEVENT',
    `UID:${commitment.id}@${escapeText(options.origin)}`,
    `DTSTAMP:${utcDateTime(commitment.updatedAt)}`,
    `DTSTART:${utcDateTime(commitment.dueAt)}`,
    `SEQUENCE:${commitment.version}`,
    `STATUS:${eventStatus(commitment.status)}`,
    `SUMMARY:${escapeText(commitment.title)}`,
    `DESCRIPTION:${escapeText(description)}`,
    `URL:${link}`,
    `CREATED:${utcDateTime(commitment.createdAt)}`,
    `LAST-MODIFIED:${utcDateTime(commitment.updatedAt)}`,
    ...others.map(attendee),
  ];
  // A reminder about something already settled would only nag.
  if (!FINISHED.has(commitment.status)) {
    for (const seconds of options.reminderOffsets) {
      lines.push(
        'BEGIN:VALARM',
        'ACTION:DISPLAY',
        `TRIGGER:-${duration(seconds)}`,
        `DESCRIPTION:${escapeText(`Due ${inWords(seconds)}: ${commitment.title}`)}`,
        'END:VALARM',
      );
    }
  }
  lines.push('END:VEVENT');
  return lines;
}

const hasDueDate = (commitment: CommitmentView): commitment is CommitmentView & { dueAt: string } =>
  commitment.dueAt !== null;

/** A VCALENDAR with one VEVENT per commitment that has a due date, CRLF line endings, folded. */
export function calendarOf(commitments: readonly CommitmentView[], options: CalendarOptions): string {
  const lines = [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//Connect//Commitments//EN',
    'CALSCALE:GREGORIAN',
    ...(options.name
      ? [
          `X-WR-CALNAME:${escapeText(options.name)}`,
          'REFRESH-INTERVAL;VALUE=DURATION:PT1H',
          'X-PUBLISHED-TTL:PT1H',
        ]
      : []),
    ...commitments.filter(hasDueDate).flatMap((commitment) => eventLines(commitment, options)),
    'END:VCALENDAR',
  ];
  return lines.map(foldLine).join(CRLF) + CRLF;
}
