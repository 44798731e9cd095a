// `connect start` runs its projector on a thread of its own (worker.ts). This is the main
// thread's side: a Projector whose calls are messages, plus the thread's metrics.
import { Worker } from 'node:worker_threads';
import type { Metrics } from '@connect/http';
import type { Projector } from '@connect/projector';
import type { FastifyBaseLogger } from 'fastify';
import type { Call, CallMessage, ThreadData, ThreadMessage } from './protocol.ts';

export interface ProjectorThread extends Projector {
  /** The thread's own metrics (the audit's, the delivery queue's, its pools'), for the server's /metrics. */
  metrics(): Promise<Metrics>;
}

/** Starts the projector thread; resolves once its projections run, rejects with why it could not. */
export async function startProjectorThread(
  options: ThreadData & { log: FastifyBaseLogger },
): Promise<ProjectorThread> {
  const { config, verifierKey } = options;
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: { config, verifierKey } satisfies ThreadData,
  });
  const answers = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let lastId = 0;
  /** Why the thread is gone, once it is. */
  let stopped: string | undefined;
  let closing = false;

  const started = new Promise<void>((resolve, reject) => {
    const stop = (reason: string, error: Error) => {
      if (stopped) return;
      stopped = reason;
      reject(error);
      for (const answer of answers.values()) answer.reject(new Error(`projector thread ${reason}`));
      answers.clear();
      if (!closing) options.log.error({ err: error }, 'the projector thread stopped');
    };
    worker.on('message', (message: ThreadMessage) => {
      if ('started' in message) return resolve();
      const answer = answers.get(message.id);
      answers.delete(message.id);
      if ('error' in message) answer?.reject(new Error(message.error));
      else answer?.resolve(message.value);
    });
    worker.on('error', (error) => stop(`failed: ${error.message}`, error));
    worker.on('exit', (code) => {
      const reason = `exited (code ${code})`;
      stop(reason, new Error(`projector thread ${reason}`));
    });
  });

  const call = <T>(name: Call): Promise<T> => {
    if (stopped) return Promise.reject(new Error(`projector thread ${stopped}`));
    const id = ++lastId;
    return new Promise<T>((resolve, reject) => {
      answers.set(id, { resolve: resolve as (value: unknown) => void, reject });
      worker.postMessage({ id, call: name } satisfies CallMessage);
    });
  };

  await started;
  return {
    readiness: () => call('readiness'),
    status: () => call('status'),
    metrics: () => call('metrics'),
    async close() {
      if (stopped) return;
      closing = true;
      try {
        await call('close');
      } finally {
        await worker.terminate();
      }
    },
  };
}
