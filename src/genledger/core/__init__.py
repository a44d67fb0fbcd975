"""The pure core: domain types, money, pricing and failure mapping. No I/O lives here."""
