"""Operations: the durable record of every change sent to a host agent."""
