"""Remote sessions, Access now and Support to come: request, ticket, relay tokens, end, history."""
