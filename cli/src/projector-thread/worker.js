// A worker thread loads its modules itself: tsx is registered here as bin/connect.js does.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
