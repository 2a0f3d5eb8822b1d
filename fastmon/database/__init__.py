"""The database beyond the ORM: outages told from refused rows and connections kept fresh
(``outages``), bulk writes for the hot paths (``bulk``), and applying values to a row
(``rows``)."""
