// The open loop's load generator, run as its own process by openLoop (support.ts), as wrk2 would
// be: a lean HTTP/1.1 client over keep-alive sockets that sends each request at its scheduled time
// and counts its latency from then. Node's http client allocated about 60 MB a second at 14,000
// requests a second, and its collections, in the bench process that also holds the seeded data,
// stalled the schedule: at that rate it put a p99 of 12 ms under /healthz of an idle server, where
// this client puts 2 ms.
import net from 'node:net';

export interface GeneratorJob {
  host: string;
  port: number;
  rate: number;
  /** Every request's bytes, in order: the first `warmUp` are sent on schedule but not counted. */
  requests: string[];
  warmUp: number;
}

export interface GeneratorResult {
  /** The counted requests' latencies in ms, in the order they were answered. */
  latenciesMs: Float64Array;
  /** Counted requests answered with a status of 300 or more, or not answered at all (no latency). */
  non2xx: number;
}

const MAX_SOCKETS = 256;

interface Response {
  /** Where the response ends in the buffer. */
  end: number;
  status: number;
  close: boolean;
}

/** The first whole response in `buffer`, or null while it is incomplete (Content-Length or chunked). */
export function parseResponse(buffer: Buffer): Response | null {
  const headEnd = buffer.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const head = buffer.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  const close = /\r\nconnection: *close/i.test(head);
  const bodyStart = headEnd + 4;
  const length = /\r\ncontent-length: *(\d+)/i.exec(head);
  if (length) {
    const end = bodyStart + Number(length[1]);
    return buffer.length >= end ? { end, status, close } : null;
  }
  if (!/\r\ntransfer-encoding: *chunked/i.test(head)) return { end: bodyStart, status, close };
  let at = bodyStart;
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', at);
    if (lineEnd < 0) return null;
    const size = Number.parseInt(buffer.toString('latin1', at, lineEnd), 16);
    if (size === 0) {
      const trailerEnd = buffer.indexOf('\r\n\r\n', lineEnd);
      return trailerEnd < 0 ? null : { end: trailerEnd + 4, status, close };
    }
    at = lineEnd + 2 + size + 2;
    if (buffer.length < at) return null;
  }
}

interface InFlight {
  countFrom: number;
  counted: boolean;
}

export async function generate(job: GeneratorJob): Promise<GeneratorResult> {
  const requests = job.requests.map((request) => Buffer.from(request, 'latin1'));
  const latencies = new Float64Array(requests.length - job.warmUp);
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
  let sending = true;

  const settle = (flight: InFlight, status: number) => {
    if (flight.counted) {
      if (status > 0) latencies[answered++] = performance.now() - flight.countFrom;
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
  const connect = () => {
    open++;
    const socket = net.connect({ host: job.host, port: job.port, noDelay: true });
    let partial: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      let buffer = partial ? Buffer.concat([partial, chunk]) : chunk;
      partial = null;
      for (;;) {
        const response = parseResponse(buffer);
        if (!response) {
          partial = buffer;
          return;
        }
        const flight = inFlight.get(socket);
        inFlight.delete(socket);
        if (flight) settle(flight, response.status);
        if (response.close) {
          socket.destroy();
          return;
        }
        release(socket);
        if (response.end === buffer.length) return;
        buffer = buffer.subarray(response.end);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      open--;
      const at = idle.indexOf(socket);
      if (at >= 0) idle.splice(at, 1);
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
    const socket = idle.pop() ?? (open < MAX_SOCKETS ? connect() : undefined);
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
  }
  sending = false;
  if (outstanding === 0) done();
  await finished;
  for (const socket of idle) socket.destroy();
  return { latenciesMs: latencies.subarray(0, answered), non2xx };
}

if (process.send)
  process.once('message', (job: GeneratorJob) => {
    generate(job).then(
      (result) => process.send?.(result, () => process.disconnect()),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  });
