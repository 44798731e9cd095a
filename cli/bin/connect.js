#!/usr/bin/env node
// The `connect` command. The project runs its TypeScript sources directly through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
