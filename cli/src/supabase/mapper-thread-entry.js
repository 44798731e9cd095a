// The mapping thread's entry: it runs the TypeScript sources as the connect command does.
import { register } from 'tsx/esm/api';

register();
await import('./mapper-thread.ts');
