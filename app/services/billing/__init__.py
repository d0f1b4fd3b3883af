"""Money and credits: the price table, the credit ledger, plans and entitlements."""
