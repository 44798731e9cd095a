export * from './deliver.ts';
export * from './phones.ts';
export * from './twilio.ts';
