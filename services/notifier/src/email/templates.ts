// The email a notification becomes: a subject, a plain-text body and an HTML body saying the same.
// Pure; every value put into the HTML is escaped.
import type { Notification, NotificationKind } from '../notification.ts';

export interface EmailContent {
  subject: string;
  text: string;
  html: string;
}

export interface TemplateOptions {
  /** Where the one-click unsubscribe link of this kind points (a page with a button). */
  unsubscribeUrl?: string;
}

/** What a person stops getting when they unsubscribe from a kind. */
export const KIND_LABELS: Record<NotificationKind, string> = {
  invitation: 'invitations',
  response: 'answers to your invitations',
  lifecycle: 'changes of a commitment’s status',
  amendment: 'proposed amendments',
  dispute: 'disputes',
  document: 'documents',
  reminder: 'reminders',
};

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

/** A link only to the web (never javascript: or data:), escaped for an attribute. */
const webHref = (url: string | undefined): string | undefined =>
  url !== undefined && /^https?:\/\//i.test(url) ? escapeHtml(url) : undefined;

/** One line: no header injection through a title, however it was written. */
const oneLine = (text: string) => text.replace(/[\r\n\t]+/g, ' ').trim();

export function renderEmail(
  notification: Notification,
  recipientName: string,
  options: TemplateOptions = {},
): EmailContent {
  const subject = oneLine(notification.title);
  const name = oneLine(recipientName);
  const label = KIND_LABELS[notification.kind];
  const text = [
    `Hello ${name},`,
    '',
    subject,
    '',
    notification.body,
    '',
    `Open it in Connect: ${notification.link}`,
    '',
    '--',
    `You get this email because you are a party to this commitment and email is on for ${label}.`,
    ...(options.unsubscribeUrl ? [`Stop emails about ${label}: ${options.unsubscribeUrl}`] : []),
  ].join('\n');

  const link = webHref(notification.link);
  const unsubscribe = webHref(options.unsubscribeUrl);
  const paragraphs = notification.body
    .split(/\r?\n\s*\r?\n/)
    .map((paragraph) => `<p style="margin:0 0 16px">${escapeHtml(paragraph).replace(/\r?\n/g, '<br>')}</p>`)
    .join('\n');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(subject)}</title>
</head>
<body style="margin:0;padding:0;background:#f5f5f5;color:#1a1a1a;font:16px/1.5 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif">
<main style="max-width:560px;margin:0 auto;padding:24px;background:#ffffff">
<p style="margin:0 0 16px">Hello ${escapeHtml(name)},</p>
<h1 style="margin:0 0 16px;font-size:20px;line-height:1.3">${escapeHtml(subject)}</h1>
${paragraphs}
${
  link
    ? `<p style="margin:24px 0"><a href="${link}" style="display:inline-block;padding:12px 20px;background:#1f4fd6;color:#ffffff;text-decoration:none;border-radius:6px;font-weight:600">Open in Connect</a></p>
<p style="margin:0 0 16px;font-size:14px;color:#4a4a4a">Or copy this address into your browser: <a href="${link}" style="color:#1f4fd6">${link}</a></p>`
    : ''
}
<hr style="border:0;border-top:1px solid #dddddd;margin:24px 0">
<p style="margin:0;font-size:13px;color:#4a4a4a">You get this email because you are a party to this commitment and email is on for ${escapeHtml(label)}.${
    unsubscribe
      ? ` <a href="${unsubscribe}" style="color:#4a4a4a">Stop emails about ${escapeHtml(label)}</a>.`
      : ''
  }</p>
</main>
</body>
</html>
`;
  return { subject, text, html };
}
