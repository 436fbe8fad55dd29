"""The site: its policy as data (:mod:`.policy`), the account system (:mod:`.accounts`),
outgoing mail (:mod:`.mail`)."""
