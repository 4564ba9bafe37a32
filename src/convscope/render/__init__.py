"""convscope.render"""
