import type { FastifyInstance } from 'fastify';

/**
 * Listens, and on SIGINT or SIGTERM shuts down in order: stop taking requests and finish the
 * ones under way, then release what the app holds (pool, embedded database).
 */
export async function serve(
  app: FastifyInstance,
  options: { port: number; host: string; onClose(): Promise<void> },
): Promise<string> {
  let closing = false;
  const shutdown = async (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down');
    try {
      await app.close();
      await options.onClose();
      process.exitCode = 0;
    } catch (error) {
      app.log.error({ err: error }, 'shutdown failed');
      process.exitCode = 1;
    }
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  return app.listen({ port: options.port, host: options.host });
}
