// The delivery queue's configuration in tests that need no outside server: no SMTP and no Twilio,
// private addresses allowed (receivers listen on 127.0.0.1), push keys made in `dataDir`.
export const deliveryConfigWithoutProviders = (dataDir: string) => ({
  smtpUrl: undefined,
  mailFrom: 'Connect <no-reply@connect.test>',
  dataDir,
  publicApiUrl: 'https://api.connect.test',
  twilio: undefined,
  webhooksAllowPrivate: true,
});
