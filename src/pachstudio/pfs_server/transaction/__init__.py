"""Transactions: `transaction_v2.API`, stored lists of PFS requests run all or nothing."""
