"""Where contacts come from: partner lead files, the CRM export, and the inboxes
(SFTP, a local folder) partner files arrive in. One module per source or inbox."""
