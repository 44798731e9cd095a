export * from './app.ts';
export { queryOperations } from './openapi.ts';
export { createReaderDb } from './reader.ts';
export {
  describeReceipt,
  partyProfileStreams,
  profileNames,
  type ReceiptState,
  replayReceipt,
} from './receipt-state.ts';
