"""The gateway's use cases: authenticate, route, call the provider, price, record.

Routes in :mod:`genledger.api` parse and render; everything in between happens here.
"""
