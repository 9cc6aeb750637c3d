-- An account is found by its id alone. The unique (id, currency) pair was the target of
-- the transfers' foreign keys, which the balance trigger replaced (see 0001): it checks
-- each transfer's accounts in its currency for the whole statement. Nothing reads the
-- pair's index any more, and every new account paid for an insert into it and for a
-- second conflict check (opening accounts: 25 us to 18 us each, 500 at a time).
ALTER TABLE accounts DROP CONSTRAINT accounts_id_currency_key;
