"""Live pages' events: their frames on the wire (``frames``), stored in commit order
(``events``), pushed through the channel layer (``push``) and served over the websocket with
replay and gap repair (``consumer``)."""
