// The open loop's load generator, run by openLoop (support.ts) as a process of its own, as wrk2
// would be, so neither the bench's collections nor its data take the schedule's time: a lean
// HTTP/1.1 client over keep-alive sockets that sends each request at its scheduled time and counts
// its latency from then.
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export interface GeneratorJob {
  host: string;
  port: number;
  rate: number;
  /** Every request's bytes, in order: the first `warmUp` are sent on schedule but not counted. */
  requests: string[];
  warmUp: number;
  /** Sockets open at once at most (default 256); a request finding none free waits for one. */
  maxSockets?: number;
}

export interface GeneratorResult {
  /** The counted requests' latencies in ms, in the order they were answered. */
  latenciesMs: Float64Array;
  /** Counted requests answered with a status of 300 or more, or not answered at all (no latency). */
  non2xx: number;
}

interface ResponseFrame {
  /** Where the response ends in the buffer. */
  end: number;
  status: number;
  close: boolean;
}

/** A response that cannot be framed: its connection is closed, and the request counted as failed. */
class ProtocolError extends Error {}

const noBody = (status: number) => status === 204 || status === 304;

/**
 * The first whole response in `buffer`, or null while it is incomplete: framed by
 * Transfer-Encoding: chunked, else Content-Length, else (a status without a body) by its head.
 */
function parseResponse(buffer: Buffer): ResponseFrame | null {
  const headEnd = buffer.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const head = buffer.toString('latin1', 0, headEnd);
  const status = /^HTTP\/1\.[01] ([2-5]\d\d)/.exec(head)?.[1];
  if (!status) throw new ProtocolError(`not a final HTTP/1.1 status line: ${head.slice(0, 40)}`);
  const response = { status: Number(status), close: /\r\nconnection:[^\r]*\bclose\b/i.test(head) };
  const bodyStart = headEnd + 4;
  if (noBody(response.status)) return { ...response, end: bodyStart };
  if (/\r\ntransfer-encoding:[^\r]*\bchunked\b/i.test(head)) {
    const end = chunkedEnd(buffer, bodyStart);
    return end === null ? null : { ...response, end };
  }
  const length = /\r\ncontent-length: *(\d+) *\r?$/im.exec(head);
  if (!length) throw new ProtocolError('a response with neither Content-Length nor chunked framing');
  const end = bodyStart + Number(length[1]);
  return buffer.length >= end ? { ...response, end } : null;
}

/** Where a chunked body starting at `at` ends (after its trailers), or null while it is incomplete. */
function chunkedEnd(buffer: Buffer, at: number): number | null {
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd < 0) return null;
    const digits = /^[0-9a-f]+/i.exec(buffer.toString('latin1', at, lineEnd))?.[0];
    if (!digits) throw new ProtocolError('a chunk without a size');
    const size = Number.parseInt(digits, 16);
    if (size === 0) {
      // The last chunk's line, then trailer lines up to an empty one.
      const trailersEnd = buffer.indexOf('\r\n\r\n', lineEnd);
      return trailersEnd < 0 ? null : trailersEnd + 4;
    }
    at = lineEnd + 2 + size + 2;
    if (buffer.length < at) return null;
  }
}

/**
 * BENCH_OPEN_LOOP_TRACE=<path prefix>: each run also writes `<prefix>-<pid>.txt`, a line per
 * counted request (when it was due, as epoch ms, and its latency in ms), to see whether a p99
 * comes from a steady queue or from stalls, and when they happened.
 */
const TRACE = process.env.BENCH_OPEN_LOOP_TRACE;

function writeTrace(file: string, dueAt: Float64Array, latencies: Float64Array): Promise<void> {
  const lines = Array.from(
    dueAt,
    (due, i) => `${(performance.timeOrigin + due).toFixed(1)} ${(latencies[i] as number).toFixed(2)}`,
  );
  return writeFile(file, `${lines.join('\n')}\n`);
}

interface InFlight {
  countFrom: number;
  counted: boolean;
}

/** Sent to the parent as the first counted request goes out (the warm-up over). */
export const COUNTING = 'counting';

/** Runs `job`; `onCounting` is called as its first counted request is sent. */
export async function generate(job: GeneratorJob, onCounting?: () => void): Promise<GeneratorResult> {
  const requests = job.requests.map((request) => Buffer.from(request, 'latin1'));
  const latencies = new Float64Array(requests.length - job.warmUp);
  /** When each counted request was due (performance.now()), beside its latency. */
  const dueAt = new Float64Array(latencies.length);
  let answered = 0;
  let non2xx = 0;
  let outstanding = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  const idle: net.Socket[] = [];
  const waiting: { request: Buffer; flight: InFlight }[] = [];
  const inFlight = new Map<net.Socket, InFlight>();
  let open = 0;
  const maxSockets = job.maxSockets ?? 256;
  let sending = true;

  const settle = (flight: InFlight, status: number) => {
    if (flight.counted) {
      if (status > 0) {
        dueAt[answered] = flight.countFrom;
        latencies[answered++] = performance.now() - flight.countFrom;
      }
      if (status === 0 || status >= 300) non2xx++;
    }
    if (--outstanding === 0 && !sending) done();
  };
  const release = (socket: net.Socket) => {
    const next = waiting.shift();
    if (next) write(socket, next.request, next.flight);
    else idle.push(socket);
  };
  const write = (socket: net.Socket, request: Buffer, flight: InFlight) => {
    inFlight.set(socket, flight);
    socket.write(request);
  };
  const forget = (socket: net.Socket) => {
    const at = idle.indexOf(socket);
    if (at >= 0) idle.splice(at, 1);
  };
  const connect = () => {
    open++;
    const socket = net.connect({ host: job.host, port: job.port, noDelay: true });
    let partial: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      let buffer = partial ? Buffer.concat([partial, chunk]) : chunk;
      partial = null;
      for (;;) {
        let response: ResponseFrame | null;
        try {
          response = parseResponse(buffer);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          socket.destroy();
          return;
        }
        if (!response) {
          partial = buffer;
          return;
        }
        const flight = inFlight.get(socket);
        // An answer nothing asked for: the connection's framing is lost (close settles the rest).
        if (!flight) {
          socket.destroy();
          return;
        }
        inFlight.delete(socket);
        settle(flight, response.status);
        if (response.close) {
          socket.destroy();
          return;
        }
        release(socket);
        if (response.end === buffer.length) return;
        buffer = buffer.subarray(response.end);
      }
    });
    // A socket the server is closing takes no more requests.
    socket.on('end', () => forget(socket));
    socket.on('error', () => {});
    socket.on('close', () => {
      open--;
      forget(socket);
      const flight = inFlight.get(socket);
      inFlight.delete(socket);
      if (flight) settle(flight, 0);
      const next = waiting.shift();
      if (next) write(connect(), next.request, next.flight);
    });
    return socket;
  };
  const send = (request: Buffer, flight: InFlight) => {
    outstanding++;
    const socket = idle.pop() ?? (open < maxSockets ? connect() : undefined);
    if (socket) write(socket, request, flight);
    else waiting.push({ request, flight });
  };

  const started = performance.now();
  for (let i = 0; i < requests.length; i++) {
    const scheduledAt = started + (i * 1000) / job.rate;
    const wait = scheduledAt - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    // Counted from its scheduled time, or from when it was sent if a timer woke up to 1 ms early.
    send(requests[i] as Buffer, {
      countFrom: Math.min(scheduledAt, performance.now()),
      counted: i >= job.warmUp,
    });
    if (i === job.warmUp) onCounting?.();
  }
  sending = false;
  if (outstanding === 0) done();
  await finished;
  for (const socket of idle) socket.destroy();
  if (TRACE) await writeTrace(`${TRACE}-${process.pid}.txt`, dueAt.subarray(0, answered), latencies);
  return { latenciesMs: latencies.subarray(0, answered), non2xx };
}

if (process.send && process.argv[1] === fileURLToPath(import.meta.url))
  process.once('message', (job: GeneratorJob) => {
    generate(job, () => process.send?.(COUNTING)).then(
      (result) => process.send?.(result, () => process.disconnect()),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
